"""`recsys-platform` command line. Each subcommand lives beside the code it drives."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module exposing `register(subparsers)`; the module's own `run(args)` does the work.
SUBCOMMANDS = {
    "simulate": "recsys_platform.simulator.cli",
    "serve": "recsys_platform.local_personalize.cli",
    "evaluate": "recsys_platform.evaluation.cli",
    "bootstrap": "recsys_platform.personalize.cli",
    "demo": "recsys_platform.demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsys-platform",
        description="Keeps an e-commerce recommender fresh: GA4 export + product DB -> Personalize.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in SUBCOMMANDS.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
