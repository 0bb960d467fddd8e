"""A real Jupyter kernel for tests: start it, run code in it, read what it printed."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jupyter_client.manager import KernelManager


class Kernel:
    """A started ipykernel with a client; ``run`` executes code like a notebook cell."""

    def __init__(self) -> None:
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel()
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 120) -> str:
        """Run a cell; return its stdout; raise AssertionError with the traceback on error."""
        out: list[str] = []
        errors: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                out.append(content["text"])
            elif kind == "error":
                errors.append("\n".join(content["traceback"]))

        reply = self.client.execute_interactive(
            textwrap.dedent(code), timeout=timeout, output_hook=hook
        )
        if reply["content"]["status"] != "ok" or errors:
            raise AssertionError("cell failed:\n" + "\n".join(errors))
        return "".join(out)

    def close(self) -> None:
        """Stop the channels and shut the kernel down (killing it if it will not go)."""
        self.client.stop_channels()
        if self.manager.is_alive():
            self.manager.shutdown_kernel(now=False)
        self.manager.cleanup_resources()


@contextmanager
def kernel() -> Iterator[Kernel]:
    """A kernel for the duration of a with-block."""
    k = Kernel()
    try:
        yield k
    finally:
        k.close()
