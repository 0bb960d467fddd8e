"""HttpUser's transport outside a worker; the lean transport is tested in tests/patched/."""

from __future__ import annotations

from fresh import python_output


def test_unpatched_process_and_bad_transport() -> None:
    """Outside a worker (nothing patched) requests' own adapter is used and gevent is not
    imported; an unknown transport names the choices."""
    code = (
        "import sys\n"
        "from notebookswarm.users.http import HttpSession\n"
        "from notebookswarm.errors import ConfigError\n"
        "s = HttpSession('http://127.0.0.1:1', None)\n"
        "print(type(s.get_adapter('http://x')).__name__, 'gevent' in sys.modules)\n"
        "try:\n"
        "    HttpSession('http://127.0.0.1:1', None, transport='curl')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    first, second = python_output(code).splitlines()
    assert first == "HTTPAdapter False"
    assert second.startswith("transport='curl': pick one of 'lean', 'urllib3'")
