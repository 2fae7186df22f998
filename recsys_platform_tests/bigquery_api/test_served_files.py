"""A simulated GA4 export and product DB, served as BigQuery datasets straight from the simulator's files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest
from google.api_core.exceptions import GoogleAPICallError
from google.cloud import bigquery

from recsys_platform.standins.bigquery_api import start_in_background
from recsys_platform.standins.ga4_simulator import export_store
from recsys_platform_tests.bigquery_api.conftest import PROPERTY, SHOP_FIRST_DAY as FIRST_DAY

EXPORT = f"shop-analytics.analytics_{PROPERTY}"


@pytest.fixture(scope="module")
def served(shop, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    # A copy the tests may rewrite and lock, so the shared simulation stays as it was written.
    copy = folder / "export_copy.duckdb"
    shutil.copy(shop.export_db, copy)
    handle = start_in_background(
        folder / "state", projects={"shop-analytics": shop.export_db, "shop-rewritten": copy},
        datasets={("shop-platform", "product_db"): (shop.product_db, "product_db")})
    key = handle.write_credentials(folder / "key.json", "shop-platform")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in handle.client_environment(key).items():
            patch.setenv(name, value)
        with bigquery.Client(project="shop-platform") as client:
            yield handle, client, copy
    handle.stop()


def test_the_export_file_is_a_project_and_its_schema_a_dataset(served, shop):
    _, client, _ = served
    assert [d.dataset_id for d in client.list_datasets("shop-analytics")] == [f"analytics_{PROPERTY}"]
    tables = [t.table_id for t in client.list_tables(EXPORT)]
    assert "events_20260301" in tables and "__TABLES__" not in tables
    shard = client.get_table(f"{EXPORT}.events_20260301")
    items = next(f for f in shard.schema if f.name == "items")
    params = next(f for f in items.fields if f.name == "item_params")
    assert (items.mode, params.mode, params.field_type) == ("REPEATED", "REPEATED", "RECORD")
    (count,) = next(iter(client.query(f"SELECT COUNT(*) FROM `{EXPORT}.events_20260301`").result()))
    assert shard.num_rows == count > 0


def test_tables_meta_table_is_the_simulators_record(served, shop):
    _, client, _ = served
    recorded = {r["table_id"]: r for r in export_store.list_shards(shop.export_db, PROPERTY)}
    listed = {r["table_id"]: dict(r) for r in client.query(
        f"SELECT table_id, creation_time, last_modified_time, row_count FROM `{EXPORT}.__TABLES__`").result()}
    for table_id, row in recorded.items():
        assert listed[table_id]["last_modified_time"] == row["last_modified_time"]
        assert listed[table_id]["row_count"] == row["row_count"]


def test_the_product_db_schema_is_a_dataset_of_the_platforms_project(served):
    _, client, _ = served
    assert "product_db" in [d.dataset_id for d in client.list_datasets()]
    (orders,) = next(iter(client.query("SELECT COUNT(*) FROM product_db.orders").result()))
    assert orders > 0


def test_a_shard_rewritten_by_the_simulator_is_seen_at_once(served):
    _, client, copy = served
    before = {r["table_id"]: dict(r) for r in client.query(
        "SELECT table_id, row_count, last_modified_time FROM `shop-rewritten.analytics_123456789.__TABLES__`"
    ).result()}["events_20260301"]
    late = export_store.read_shard(copy, PROPERTY, FIRST_DAY).slice(0, 3)
    export_store.append_to_shard(copy, PROPERTY, FIRST_DAY, late)  # the simulator's own re-export
    after = {r["table_id"]: dict(r) for r in client.query(
        "SELECT table_id, row_count, last_modified_time FROM `shop-rewritten.analytics_123456789.__TABLES__`"
    ).result()}["events_20260301"]
    assert after["row_count"] == before["row_count"] + 3
    assert after["last_modified_time"] > before["last_modified_time"]


def test_a_query_waits_while_another_process_holds_the_file(served):
    _, client, copy = served
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time\n"
                               f"con = duckdb.connect({str(copy)!r})\n"
                               "print('locked', flush=True)\ntime.sleep(1.0)\ncon.close()"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        (count,) = next(iter(client.query(
            "SELECT COUNT(*) FROM `shop-rewritten.analytics_123456789.events_20260302`").result()))
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert count > 0
    assert waited > 0.3  # the stand-in retried the lock instead of failing


def test_a_file_held_past_the_lock_timeout_fails_the_query_naming_it_and_holds_nothing(shop, tmp_path):
    """A query reads two served files; another process holds the second past the stand-in's lock timeout.
    The query fails naming the wait, and the first file, already attached, is let go: another process can
    write it at once. Once released, the held file is served."""
    free, held = tmp_path / "a_product_db.duckdb", tmp_path / "b_export.duckdb"  # attached in this order
    shutil.copy(shop.product_db, free)
    shutil.copy(shop.export_db, held)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys\n"
                               f"con = duckdb.connect({str(held)!r})\n"
                               "print('locked', flush=True)\nsys.stdin.readline()\ncon.close()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    sql = ("SELECT (SELECT COUNT(*) FROM `shop-held.analytics_123456789.events_20260302`) "
           "+ (SELECT COUNT(*) FROM `shop-free.product_db.orders`)")
    with start_in_background(tmp_path / "state", projects={"shop-held": held, "shop-free": free},
                             lock_timeout_seconds=0.5) as handle:
        key = handle.write_credentials(tmp_path / "key.json", "shop-held")
        with pytest.MonkeyPatch.context() as patch:
            for name, value in handle.client_environment(key).items():
                patch.setenv(name, value)
            with bigquery.Client(project="shop-held") as client:
                try:
                    assert holder.stdout.readline().strip() == "locked"
                    with pytest.raises(GoogleAPICallError, match="held by another process for over 0.5 s"):
                        client.query(sql, job_retry=None, retry=None).result(retry=None)
                    subprocess.run([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                                    "c.execute('CREATE TABLE elsewhere AS SELECT 1 AS n'); c.close()", str(free)],
                                   check=True, capture_output=True, timeout=60)
                finally:
                    holder.communicate("release\n", timeout=30)
                (count,) = next(iter(client.query(sql).result()))
    assert count > 0
