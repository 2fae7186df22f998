"""`recsys-platform provision`: create the Personalize dataset group, schemas, datasets and solutions."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "provision",
        help="create the Personalize resources of personalize.yaml (idempotent)",
        description="Describe-or-create the dataset group, schemas, datasets and solution of "
                    "recsys_platform/personalize/personalize.yaml. Running it again creates nothing new.",
    )
    parser.add_argument("--env", choices=("local", "aws"), default=None,
                        help="deployment (default: RECSYS_ENV, else local)")
    parser.add_argument("--with-comparison", action="store_true",
                        help="also create the v1 (purchases only) and v2 (all events) experiment solutions")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from recsys_platform.defs.personalize.provisioning import provision
    from recsys_platform.defs.personalize.personalize_setup import load_setup
    from recsys_platform.lib.deployments import resources_for
    from recsys_platform.settings import PlatformSettings

    if args.env:
        os.environ["RECSYS_ENV"] = args.env
    setup = load_setup()
    extra = tuple(setup.comparison.values()) if args.with_comparison else ()
    personalize = resources_for(PlatformSettings.from_environment())["personalize"]
    # Outside a run, this resolves the resource's EnvVars.
    with personalize.process_config_and_initialize_cm() as resource:
        arns = provision(resource.get_client(), setup, extra_solutions=extra)
    print(f"dataset group  {arns.dataset_group_arn}")
    for key, arn in arns.dataset_arns.items():
        print(f"dataset        {arn}")
    print(f"solution       {arns.solution_arn}")
    print(f"created {len(arns.created)} new resource(s)" + "".join(f"\n  {arn}" for arn in arns.created))
    return 0
