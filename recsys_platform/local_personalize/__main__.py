"""`python -m recsys_platform.local_personalize --port N`: the same as `recsys-platform serve`."""

import argparse
import sys

from recsys_platform.local_personalize.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsys_platform.local_personalize")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
