"""One BigQuery stand-in per test module, reached only through the real google-cloud-bigquery client.

The client finds the stand-in the way a deployment would: BIGQUERY_EMULATOR_HOST and a service-account
key file (GOOGLE_APPLICATION_CREDENTIALS) whose token_uri is the stand-in's token endpoint."""

from __future__ import annotations

import re
import uuid

import pytest

from recsys_platform.standins.bigquery_api import start_in_background

PROJECT = "shop-platform"


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bigquery")
    # Small pages, so a few thousand rows already take several round trips.
    handle = start_in_background(folder / "state", default_page_rows=500, insert_wait_seconds=0.2)
    key = handle.write_credentials(folder / "key.json", PROJECT)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in handle.client_environment(key).items():
            patch.setenv(name, value)
        yield handle
    handle.stop()


@pytest.fixture(scope="module")
def client(standin):
    from google.cloud import bigquery

    with bigquery.Client(project=PROJECT) as bq:
        yield bq


@pytest.fixture
def dataset(client, request) -> str:
    """A fresh dataset for the test: `project.dataset`."""
    name = re.sub(r"\W", "_", request.node.name)[:40] + "_" + uuid.uuid4().hex[:6]
    client.create_dataset(name)
    return f"{PROJECT}.{name}"


def run(client, sql: str, *parameters, **config):
    """Run a query and return its rows as dicts (parameters: bigquery.ScalarQueryParameter, ...)."""
    from google.cloud import bigquery

    job_config = bigquery.QueryJobConfig(query_parameters=list(parameters), **config)
    return [dict(row) for row in client.query(sql, job_config=job_config).result()]
