"""A database client recording real SQL with self.measure(), as docs/custom-protocols.md shows."""

import os

import psycopg
from locust import User, constant, task


class Shopper(User):
    wait_time = constant(0.001)

    def on_start(self):
        self.conn = psycopg.connect(os.environ["NBS_PG_DSN"], autocommit=True)

    def on_stop(self):
        self.conn.close()

    @task(3)
    def order(self):
        with self.measure("sql", "insert_order") as m:
            row = self.conn.execute(
                "INSERT INTO orders (item) VALUES (%s) RETURNING id", ("book",)
            ).fetchone()
            m.response_length = len(str(row[0]))

    @task
    def broken(self):
        with self.measure("sql", "missing_table"):
            self.conn.execute("SELECT * FROM no_such_table")
