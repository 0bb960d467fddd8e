"""Example user files shipped with notebookswarm."""
