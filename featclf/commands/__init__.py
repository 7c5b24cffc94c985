"""Subcommands of the ``featclf`` command, one module each (see featclf.cli)."""
