"""One BigQuery stand-in per test module, reached only through the real google-cloud-bigquery client.

The client finds the stand-in the way a deployment would: BIGQUERY_EMULATOR_HOST and a service-account
key file (GOOGLE_APPLICATION_CREDENTIALS) whose token_uri is the stand-in's token endpoint."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from recsys_platform.standins.bigquery_api import start_in_background

PROJECT = "shop-platform"
PROPERTY = "123456789"
TIMEZONE = "Asia/Seoul"
SHOP_FIRST_DAY = dt.date(2026, 3, 1)


@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    """A small simulated shop (GA4 export + product DB, two days), written once per test process; tests
    that change the export work on a copy."""
    from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate

    home = tmp_path_factory.mktemp("shop")
    return simulate(SimulationConfig(home=home, days=2, events_per_day=300, users=60, items=30, seed=9,
                                     start_date=SHOP_FIRST_DAY, property_id=PROPERTY, timezone=TIMEZONE))


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
