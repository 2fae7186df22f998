"""`recsys-platform doctor`: check every prerequisite of the configured deployment and print one report.

Each check is one line: OK, MISSING (create or set something), FAILED (present but wrong, or refused) or
UNCHECKED (could not be asked; the line says why), and every line that is not OK ends with its fix.
The deployment is RECSYS_ENV's (default local). Exit code 0 when every check is OK, 1 otherwise.
With `--json` the output is one JSON object: {"deployment", "ok", "checks": [{"name", "status", "summary",
"fix"}]}. `--policies` prints the policy documents the fixes name, filled in, and checks nothing.
`--create` creates a missing platform dataset (RECSYS_BQ_DATASET) in the GA4 export's location;
nothing else is ever changed (the S3 write check puts a small probe object and deletes it).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check every prerequisite of the configured deployment and say how to fix what is missing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", choices=("local", "aws"), default=None,
                        help="deployment to check (default: RECSYS_ENV, else local)")
    parser.add_argument("--create", action="store_true",
                        help="create the platform's BigQuery dataset if it is missing, in the export's "
                        "location")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--policies", action="store_true",
                        help="print the IAM and bucket policy documents the deployment needs, filled in with "
                        "RECSYS_LAKE_BUCKET(/PREFIX) and RECSYS_PERSONALIZE_SERVICE_ROLE_ARN, and check nothing")
    parser.add_argument("--no-dotenv", action="store_true",
                        help="ignore a .env file: check the process environment only (what a deployed "
                        "process sees)")
    parser.set_defaults(func=run)


def contract_for(settings):
    """The product DB contract the platform will use (RECSYS_PRODUCT_DB_CONTRACT), as the checks need it.

    It lives with the product DB stage (defs/), which the checks in lib/ may not import."""
    from recsys_platform.defs.product_db.contract import check_replica, load_contract
    from recsys_platform.lib.prerequisites import ReplicaContract

    contract = load_contract(settings.product_db_contract)
    return ReplicaContract(contract.name, tuple(contract.replica_tables()),
                           lambda column_types: check_replica(contract, column_types))


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from recsys_platform.lib.prerequisites import check_prerequisites, deployment_policies

    if args.env:
        os.environ["RECSYS_ENV"] = args.env
    if args.policies:
        if not args.no_dotenv:
            from dotenv import load_dotenv

            load_dotenv(override=False)
        bucket = os.environ.get("RECSYS_LAKE_BUCKET") or "<RECSYS_LAKE_BUCKET>"
        role = os.environ.get("RECSYS_PERSONALIZE_SERVICE_ROLE_ARN") or "<RECSYS_PERSONALIZE_SERVICE_ROLE_ARN>"
        prefix = os.environ.get("RECSYS_LAKE_PREFIX") or "recsys/"
        for title, document in deployment_policies(bucket, prefix, role).items():
            print(f"# {title}\n{json.dumps(document, indent=2)}\n", flush=True)
        return 0
    report = check_prerequisites(create_platform_dataset=args.create, contract_for=contract_for,
                                 read_dotenv=not args.no_dotenv)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render(), flush=True)
    return 0 if report.ok else 1
