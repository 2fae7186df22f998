"""`recsys-platform doctor` on the embedded default (RECSYS_ENV=local): the state folder, the simulated
export and product DB files, the contract against the replica, the export's daily tables and the local
Personalize."""

from __future__ import annotations

import datetime as dt

import pytest

from recsys_platform_tests.doctor.conftest import doctor, not_ok

LOCAL_CHECKS = ["settings.deployment", "settings.timezone", "settings.contract", "local.state_folder",
                "local.export_db", "local.product_db", "warehouse.replica_contract",
                "warehouse.export_tables", "personalize.reachable"]


@pytest.fixture(scope="module")
def local_env(tmp_path_factory):
    from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
    from recsys_platform.standins.local_personalize.server import start_in_background

    home = tmp_path_factory.mktemp("local") / "recsys"
    simulate(SimulationConfig(home=home, days=2, events_per_day=150, users=30, items=15, seed=3,
                              start_date=dt.date(2026, 3, 1)))
    with start_in_background(home / "personalize", home / "lake") as personalize:
        yield {"RECSYS_ENV": "local", "RECSYS_HOME": str(home),
               "RECSYS_PERSONALIZE_ENDPOINT_URL": personalize.endpoint_url, "RECSYS_GA4_TIMEZONE": None,
               "RECSYS_GA4_PROPERTY_ID": None, "RECSYS_PRODUCT_DB_CONTRACT": None, "RECSYS_START_DATE": None}


def test_a_simulated_shop_with_the_local_personalize_passes_every_check(local_env, monkeypatch, capsys):
    code, checks = doctor(monkeypatch, capsys, local_env)
    assert list(checks) == LOCAL_CHECKS
    assert not_ok(checks) == {}
    assert code == 0
    assert "the embedded default's" in checks["settings.timezone"]["summary"]  # a default, and says so
    assert "newest day 2026-03-02 (events_20260302" in checks["warehouse.export_tables"]["summary"]
    assert "matches contract simulator" in checks["warehouse.replica_contract"]["summary"]


def test_a_fresh_machine_is_told_to_simulate_and_to_start_personalize(tmp_path, monkeypatch, capsys,
                                                                      local_env):
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    code, checks = doctor(monkeypatch, capsys, local_env, RECSYS_HOME=str(tmp_path / "nothing-yet"),
                          RECSYS_PERSONALIZE_ENDPOINT_URL=endpoint)
    assert code == 1
    assert not_ok(checks) == {"local.state_folder": "MISSING", "local.export_db": "MISSING",
                              "local.product_db": "MISSING", "warehouse.replica_contract": "UNCHECKED",
                              "warehouse.export_tables": "UNCHECKED", "personalize.reachable": "FAILED"}
    assert "recsys-platform simulate" in checks["local.export_db"]["fix"]
    assert "the GA4 export file is missing" in checks["warehouse.export_tables"]["summary"]
    assert checks["personalize.reachable"]["summary"].startswith(f"ListDatasetGroups at {endpoint} failed")
    assert "recsys-platform serve --host 127.0.0.1 --port 8765" in checks["personalize.reachable"]["fix"]


def test_a_replica_that_is_not_the_contracts_is_named_table_by_table(local_env, monkeypatch, capsys):
    code, checks = doctor(monkeypatch, capsys, local_env, RECSYS_PRODUCT_DB_CONTRACT="datastream")
    assert code == 1
    assert not_ok(checks) == {"warehouse.replica_contract": "FAILED"}
    problems = checks["warehouse.replica_contract"]["summary"].splitlines()
    assert "product_db.shop_items (the contract's items) does not exist in the replica" in problems
    assert "product_db.shop_orders (the contract's orders) does not exist in the replica" in problems


def test_an_unknown_deployment_is_the_one_line(monkeypatch, capsys, local_env):
    code, checks = doctor(monkeypatch, capsys, local_env, RECSYS_ENV="staging")
    assert code == 1
    assert list(checks) == ["settings.deployment"]
    assert checks["settings.deployment"]["status"] == "FAILED"
    assert "set RECSYS_ENV to one of local, aws" in checks["settings.deployment"]["fix"]


def test_a_broken_contract_file_is_named(local_env, monkeypatch, capsys, tmp_path):
    contract = tmp_path / "mine.yaml"
    contract.write_text("tables: {}\npaid_statuses: [paid]\n")
    code, checks = doctor(monkeypatch, capsys, local_env, RECSYS_PRODUCT_DB_CONTRACT=str(contract))
    assert code == 1
    assert not_ok(checks) == {"settings.contract": "FAILED", "warehouse.replica_contract": "UNCHECKED"}
    assert "tables.items.table is missing" in checks["settings.contract"]["summary"]
