"""`recsys-platform serve`: run the local Personalize in the foreground."""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the local Amazon Personalize stand-in (loopback only)",
        description="Serve Personalize's API on loopback for boto3 clients (endpoint_url=http://HOST:PORT).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument(
        "--home", help="state folder root (RECSYS_HOME); resources live in <home>/personalize"
    )
    parser.add_argument(
        "--step-delay", type=float, default=0.05,
        help="seconds each job spends in PENDING and before ACTIVE, so the lifecycle is observable",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    if args.home:
        os.environ["RECSYS_HOME"] = args.home
    from recsys_platform.settings import PlatformSettings
    from recsys_platform.standins.local_personalize.server import LocalPersonalize, create_server

    paths = PlatformSettings.from_environment().paths
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = create_server(paths.personalize_state, paths.lake, host=args.host, port=args.port,
                               step_delay=args.step_delay)
    except ValueError as error:  # a non-loopback host or an out-of-range option
        print(f"recsys-platform serve: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # most often: the port is taken
        print(f"recsys-platform serve: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    handle = LocalPersonalize(server, None)
    print(f"local Personalize on {handle.endpoint_url} (state in {handle.state_dir})", flush=True)
    try:
        handle.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
    return 0
