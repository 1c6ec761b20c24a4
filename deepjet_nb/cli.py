"""The ``deepjet-nb`` command line: one subcommand per pipeline stage.

Each stage module provides ``register_cli(subparsers)``, which adds its subparser and sets ``func`` to a
function ``(args) -> int``. Stage modules keep heavy imports (TensorFlow, matplotlib) inside functions, so
``deepjet-nb --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from .errors import DeepJetError, one_line

STAGES = ("samples", "convert", "_train_cli", "predict", "evaluate", "boosted", "deploy", "service", "scan",
          "verify", "inspect", "project")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepjet-nb",
        description="Jet-flavour tagging: generate samples, convert, train, predict, evaluate.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in STAGES:
        importlib.import_module(f"deepjet_nb.{stage}").register_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM (a batch system's kill) unwinds like Ctrl-C, so no half-written output is left behind.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at interpreter exit
        return code
    except DeepJetError as err:
        return _fail(args.command, str(err))
    except OSError as err:
        if isinstance(err, BrokenPipeError):  # `deepjet-nb ... | head`: the reader left; nothing to report
            _silence_stdout()
            return 141
        # Writing the outputs failed (full disk, read-only file system, ...): name the path, not a traceback.
        from ._atomic import os_error_line

        return _fail(args.command, os_error_line(err, getattr(args, "out", None)))
    except KeyboardInterrupt:
        print(f"deepjet-nb {args.command}: interrupted", file=sys.stderr)
        return 130


def _fail(command: str, message: str) -> int:
    print(f"deepjet-nb {command}: error: {one_line(message)}", file=sys.stderr)
    return 1


def _silence_stdout():
    # Python would report the broken pipe once more when it flushes stdout at exit.
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
