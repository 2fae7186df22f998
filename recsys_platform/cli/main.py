"""`recsys-platform` command line: every other module of this folder is one subcommand.

A subcommand module exposes `register(subparsers)`, which adds its parser and sets `func`; the module's
heavy imports happen inside its `run(args)`, so `recsys-platform --help` stays quick.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

import recsys_platform.cli as cli_package


def subcommand_modules() -> list[str]:
    return sorted(
        f"{cli_package.__name__}.{info.name}" for info in pkgutil.iter_modules([str(Path(cli_package.__file__).parent)])
        if info.name != "main"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsys-platform",
        description="Keeps an e-commerce recommender fresh: GA4 export + product DB -> Personalize.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in subcommand_modules():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
