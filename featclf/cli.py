"""The ``featclf`` command.

Subcommands live one per module in :mod:`featclf.commands`; each module
defines ``register(subparsers)``, which adds its parser and sets
``func=run`` with ``run(args) -> int``. They are found automatically, so a
new subcommand is one new file. ``featclf`` with no subcommand runs
``featclf train`` (on the bundled digits when no data is given).
"""

import argparse
import importlib
import pkgutil
import sys

from . import __version__

__all__ = ["main", "build_parser"]

DEFAULT_COMMAND = "train"


def build_parser():
    """Return the argument parser with every subcommand registered.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    from . import commands

    parser = argparse.ArgumentParser(
        prog="featclf",
        description=(
            "Classical image features (HOG, LBP, colour histograms, SIFT bag of "
            "visual words) with scikit-learn classifiers. Without a subcommand, "
            "runs 'featclf train' on the bundled digits data."
        ),
    )
    parser.add_argument("--version", action="version", version=f"featclf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        module.register(subparsers)
    parser.command_names = sorted(subparsers.choices)
    return parser


def main(argv=None):
    """Run the ``featclf`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name (``sys.argv[1:]`` when None).

    Returns
    -------
    status : int
        Exit status: 0 on success, 1 for a failed run, 2 for bad usage.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or (argv[0] not in parser.command_names and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, DEFAULT_COMMAND)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except (FileNotFoundError, ValueError, TypeError, OSError) as exc:
        print(f"featclf {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"featclf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
