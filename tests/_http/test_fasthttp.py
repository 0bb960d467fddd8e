"""FastHttpUser's import in a fresh interpreter; its client is tested in tests/patched/."""

from __future__ import annotations

from fresh import python_output


def test_importing_fasthttp_does_not_import_gevent() -> None:
    """Importing notebookswarm.users.fasthttp in a fresh interpreter leaves gevent unimported."""
    code = (
        "import sys, notebookswarm.users.fasthttp\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('gevent', 'geventhttpclient', 'notebookswarm._http.fastclient')))"
    )
    assert python_output(code) == "[]"
