"""Locust's names over notebookswarm: unmodified locustfiles load and run.

- :mod:`.names`: ``import locust`` resolves here while user code loads;
- :mod:`.loading`: executing a file, keeping its classes, shape and environment;
- :mod:`.events`: ``events`` and their hooks; :mod:`.environment`: ``self.environment``;
- :mod:`.shape`: ``LoadTestShape`` and its adapter to notebookswarm shapes;
- :mod:`.clients`, :mod:`.exception`: Locust's client signatures and exception names;
- :mod:`.single`: running one user verbosely (``run_single_user``).

docs/locust.md says what is supported, where each event fires, and what is not.
"""
