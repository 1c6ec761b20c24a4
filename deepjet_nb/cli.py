"""The ``deepjet-nb`` command line: one subcommand per pipeline stage.

Each stage module provides ``register_cli(subparsers)``, which adds its subparser and sets ``func`` to a
function ``(args) -> int``. Stage modules keep heavy imports (TensorFlow, matplotlib) inside functions, so
``deepjet-nb --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from .errors import DeepJetError

STAGES = ("samples", "convert", "train", "predict", "evaluate")


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
        return int(args.func(args) or 0)
    except DeepJetError as err:
        print(f"deepjet-nb {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"deepjet-nb {args.command}: interrupted", file=sys.stderr)
        return 130


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
