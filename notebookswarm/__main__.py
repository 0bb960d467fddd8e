"""``python -m notebookswarm``: the command line."""

from notebookswarm.cli import main

raise SystemExit(main())
