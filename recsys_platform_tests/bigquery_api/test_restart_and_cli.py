"""What survives a restart, and the `recsys-platform serve-bigquery` command."""

from __future__ import annotations

import subprocess
import sys

import pytest
from google.cloud import bigquery

from recsys_platform.standins.bigquery_api import start_in_background


def test_metadata_jobs_and_results_survive_a_restart(tmp_path, monkeypatch):
    first = start_in_background(tmp_path / "state")
    port = first.server.server_address[1]
    key = first.write_credentials(tmp_path / "key.json", "shop-platform")
    for name, value in first.client_environment(key).items():
        monkeypatch.setenv(name, value)
    client = bigquery.Client(project="shop-platform")
    dataset = bigquery.Dataset("shop-platform.in_eu")
    dataset.location = "EU"
    client.create_dataset(dataset)
    client.query("CREATE TABLE in_eu.events PARTITION BY event_date CLUSTER BY name AS "
                 "SELECT DATE '2026-03-02' AS event_date, 'a' AS name").result()
    job = client.query("SELECT name FROM in_eu.events")
    job.result()
    table = client.get_table("shop-platform.in_eu.events")
    first.stop()

    second = start_in_background(tmp_path / "state", port=port)  # same folder, same address
    try:
        # The client's token was issued by the first process: it gets 401 once and fetches a new one.
        again = client.get_table("shop-platform.in_eu.events")
        assert (again.created, again.modified) == (table.created, table.modified)
        assert again.time_partitioning.field == "event_date" and again.clustering_fields == ["name"]
        assert client.get_dataset("shop-platform.in_eu").location == "EU"
        old = client.get_job(job.job_id, location="EU")
        assert (old.state, old.statement_type) == ("DONE", "SELECT")
        assert [dict(r) for r in old.result()] == [{"name": "a"}]  # its result rows are still there
    finally:
        second.stop()


def test_serve_bigquery_command_serves_a_file_and_prints_how_to_connect(tmp_path, monkeypatch):
    import duckdb

    served = tmp_path / "shop.duckdb"
    with duckdb.connect(str(served)) as con:
        con.execute("CREATE SCHEMA sales; CREATE TABLE sales.orders AS SELECT 1 AS id UNION ALL SELECT 2")
    process = subprocess.Popen(
        [sys.executable, "-m", "recsys_platform.cli.main", "serve-bigquery", "--port", "0",
         "--data-dir", str(tmp_path / "state"), "--project", f"shop-sales={served}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        while not lines or not lines[-1].startswith("  export GOOGLE_APPLICATION_CREDENTIALS="):
            line = process.stdout.readline()
            assert line, f"the command stopped early: {lines}"
            lines.append(line.rstrip("\n"))
        assert lines[0].startswith("BigQuery stand-in on http://127.0.0.1:")
        environment = dict(line.strip().removeprefix("export ").split("=", 1) for line in lines
                           if line.startswith("  export "))
        assert set(environment) == {"BIGQUERY_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"}
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        with bigquery.Client(project="shop-sales") as client:  # configured by what the command printed
            assert list(client.query("SELECT SUM(id) FROM sales.orders").result())[0][0] == 3
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_bigquery_refuses_a_non_loopback_address(tmp_path, capsys):
    from recsys_platform.cli.main import main

    assert main(["serve-bigquery", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)]) == 2
    assert "loopback only" in capsys.readouterr().err
    with pytest.raises(ValueError, match="loopback only"):
        start_in_background(tmp_path, host="192.168.1.10")
