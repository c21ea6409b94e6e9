"""`python -m seglab <command>`: thin argparse front-end; each command parses and calls the package functions.

Heavy modules are imported inside the command functions so that `--help` stays instant.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seglab.errors import SeglabError


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive integer, got {text}")
    return value


# ----------------------------------------------------------------------------------------------------- synth
def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate the synthetic MiniCity or MiniVOC dataset in the official layout")
    p.add_argument("dataset", choices=["minicity", "minivoc"])
    p.add_argument("--out", required=True, help="output folder (must be empty or missing unless --overwrite)")
    p.add_argument("--train", type=_non_negative_int, default=None, help="number of training images")
    p.add_argument("--val", type=_non_negative_int, default=None, help="number of validation images")
    p.add_argument("--test", type=_non_negative_int, default=None, help="number of test images (MiniCity)")
    p.add_argument("--height", type=_positive_int, default=None, help="image height in pixels")
    p.add_argument("--width", type=_positive_int, default=None, help="image width in pixels")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same files")
    p.add_argument("--workers", type=_positive_int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> None:
    from seglab import synth

    options = {k: getattr(args, k) for k in ("train", "val", "test", "height", "width") if getattr(args, k) is not None}
    generate = synth.generate_minicity if args.dataset == "minicity" else synth.generate_minivoc
    summary = generate(args.out, seed=args.seed, overwrite=args.overwrite, workers=args.workers, **options)
    print(summary)


# ------------------------------------------------------------------------------------------------------ main
_COMMANDS = [_add_synth]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m seglab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors become a single `error: ...` line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SeglabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
