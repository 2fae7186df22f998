"""`recsys-platform serve-bigquery`: run the BigQuery stand-in in the foreground."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve-bigquery",
        help="run the BigQuery REST stand-in on DuckDB (loopback only)",
        description="Serve BigQuery's v2 REST API on loopback for the real google-cloud-bigquery client. "
        "Point a client at it with BIGQUERY_EMULATOR_HOST and the service-account key this command writes "
        "(GOOGLE_APPLICATION_CREDENTIALS).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9050, help="port (default 9050; 0 picks a free one)")
    parser.add_argument("--data-dir", help="state folder: projects' DuckDB files, catalog, job results "
                        "(default <RECSYS_HOME>/bigquery)")
    parser.add_argument("--project", action="append", default=[], metavar="PROJECT=FILE.duckdb",
                        help="serve a DuckDB file as a project, each schema a dataset (repeatable), e.g. "
                        "shop-analytics=.recsys/ga4_export.duckdb")
    parser.add_argument("--dataset", action="append", default=[], metavar="PROJECT.DATASET=FILE.duckdb[:SCHEMA]",
                        help="serve one schema of a DuckDB file as a dataset of a project (repeatable), e.g. "
                        "shop-platform.product_db=.recsys/product_db.duckdb")
    parser.add_argument("--location", default="US", help="location of served files and of datasets created "
                        "without one (default US)")
    parser.add_argument("--credentials", help="where to write the service-account key file "
                        "(default <data-dir>/service-account.json)")
    parser.add_argument("--credentials-project",
                        help="project_id written into the key file, a client's default project (default: the "
                        "first --project, else recsys-platform)")
    parser.set_defaults(func=run)


def parse_projects(values: list[str]) -> dict[str, Path]:
    projects = {}
    for value in values:
        project, separator, path = value.partition("=")
        if not separator or not project or not path:
            raise ValueError(f"--project expects PROJECT=FILE.duckdb, got {value!r}")
        projects[project] = Path(path)
    return projects


def parse_datasets(values: list[str]) -> dict[tuple[str, str], tuple[Path, str]]:
    datasets = {}
    for value in values:
        name, separator, target = value.partition("=")
        project, dot, dataset = name.rpartition(".")
        if not separator or not dot or not project or not dataset or not target:
            raise ValueError(f"--dataset expects PROJECT.DATASET=FILE.duckdb[:SCHEMA], got {value!r}")
        path, colon, schema = target.rpartition(":")
        if not colon or not schema or "/" in schema:  # no `:SCHEMA`: the schema is named like the dataset
            path, schema = target, dataset
        datasets[(project, dataset)] = (Path(path), schema)
    return datasets


def run(args: argparse.Namespace) -> int:
    import logging

    from recsys_platform.standins.bigquery_api.server import create_server

    data_dir = Path(args.data_dir) if args.data_dir else Path(os.environ.get("RECSYS_HOME", ".recsys")) / "bigquery"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        projects, datasets = parse_projects(args.project), parse_datasets(args.dataset)
        standin = create_server(data_dir, projects=projects, datasets=datasets, host=args.host, port=args.port,
                                location=args.location)
    except ValueError as error:  # a non-loopback host, a bad option or id
        print(f"recsys-platform serve-bigquery: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # most often: the port is taken
        print(f"recsys-platform serve-bigquery: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    key_project = args.credentials_project or next(iter(projects), "recsys-platform")
    key_path = standin.write_credentials(Path(args.credentials) if args.credentials else
                                         standin.data_dir / "service-account.json", key_project)
    print(f"BigQuery stand-in on {standin.endpoint_url} (data in {standin.data_dir})", flush=True)
    for project, path in projects.items():
        print(f"  project {project}: {path}", flush=True)
    for (project, dataset), (path, schema) in datasets.items():
        print(f"  dataset {project}.{dataset}: {path} (schema {schema})", flush=True)
    print("Point google-cloud-bigquery at it with:", flush=True)
    for name, value in standin.client_environment(key_path).items():
        print(f"  export {name}={value}", flush=True)
    try:
        standin.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0
