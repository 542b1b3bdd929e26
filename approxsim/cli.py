"""The ``approxsim`` command line: thin over the API.

Each subcommand module has ``add_parser(subparsers)``, which adds its parser and
sets ``func=handler`` with ``handler(args) -> int``. A user error (any
:class:`~approxsim.ApproxsimError`, ``ValueError``, ``FileNotFoundError``...)
prints one clear message to stderr and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from approxsim._version import __version__

# Modules that contribute subcommands, in --help order.
SUBCOMMAND_MODULES = (
    "approxsim.cli_core",
    "approxsim.analysis_cli",
    "approxsim.check",
    "approxsim.sweep.cli",
)

_USER_ERRORS = (ValueError, TypeError, KeyError, OSError)  # OSError: files, folders, permissions, disks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="approxsim",
        description="Simulate approximate floating-point multipliers in neural networks.")
    parser.add_argument("--version", action="version", version=f"approxsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name or name.startswith(f"{e.name}."):
                continue  # that part of approxsim is not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Runs the command line; returns the exit status."""
    from approxsim.errors import ApproxsimError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        _quiet_stdout()
        return 0
    except (ApproxsimError, *_USER_ERRORS) as e:
        print(f"approxsim {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"approxsim {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(e: BaseException) -> str:
    """An error as the CLI prints it: its message (an OSError with its file name), never a traceback."""
    if isinstance(e, OSError) and e.strerror and e.filename:
        return f"{e.strerror}: {e.filename}"
    return str(e)


def _quiet_stdout() -> None:
    """After a broken pipe, points stdout at /dev/null so that Python's exit flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
