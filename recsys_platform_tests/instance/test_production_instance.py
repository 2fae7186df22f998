"""deploy/dagster.yaml against a real PostgreSQL: the instance loads from it, keeps runs and their events
there, and keeps the concurrency pools' slots there, where every process of a deployment sees the same ones."""

import contextlib
import shutil
from pathlib import Path

import pytest
from dagster import (
    AssetExecutionContext,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    QueuedRunCoordinator,
    asset,
    materialize,
)

from recsys_platform_tests.instance.postgres import PostgresServer, PostgresUnavailable, running_postgres

pytest.importorskip("dagster_postgres", reason="deploy/dagster.yaml needs dagster-postgres==0.29.27 (and "
                    "psycopg2-binary==2.9.13) installed")
DEPLOY_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"


@pytest.fixture(scope="module")
def postgres():
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as reason:
        pytest.skip(str(reason))


@pytest.fixture
def production_home(tmp_path, postgres, monkeypatch) -> Path:
    """A DAGSTER_HOME holding deploy/dagster.yaml, with its connection variables naming the test server."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_DAGSTER_YAML, home / "dagster.yaml")
    for name, value in postgres.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@contextlib.contextmanager
def instance_at(home: Path):
    """An instance as a separate process of the deployment would load it (its own connections)."""
    instance = DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


def query(server: PostgresServer, sql: str, params=()) -> list[tuple]:
    with contextlib.closing(server.connect()) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@asset(pool="warehouse")
def tiny_table(context: AssetExecutionContext) -> int:
    """Stands in for a warehouse step: it belongs to the pool the GA4 assets use."""
    context.log.info("tiny_table written")
    return 3


def test_the_production_instance_loads_with_postgres_storage_and_the_recovery_settings(production_home, postgres):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    with instance_at(production_home) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert not instance.telemetry_enabled
        # What the fault injection found missing: a dead run must give its pool slots back.
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert instance.run_monitoring_max_runtime_seconds > 0
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.pool_config.pool_granularity.value == "op"
        assert concurrency.run_queue_config.op_concurrency_slot_buffer == 0
    # Dagster created its schema in the database the variables name, and no SQLite file under DAGSTER_HOME.
    tables = {name for (name,) in query(postgres, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"runs", "event_logs", "concurrency_limits", "concurrency_slots", "pending_steps"} <= tables
    assert not [path for path in production_home.rglob("*") if path.suffix in {".db", ".sqlite"}]


def test_a_run_is_stored_in_postgres_and_read_back_by_another_process(production_home, postgres):
    with instance_at(production_home) as instance:
        result = materialize([tiny_table], instance=instance)
        assert result.success
        run_id = result.run_id

    # A fresh instance (new connections, as the webserver or daemon would have) reads the run back.
    with instance_at(production_home) as reader:
        run = reader.get_run_by_id(run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS
        materializations = reader.get_latest_materialization_events([tiny_table.key])
        assert materializations[tiny_table.key].run_id == run_id
        logged = [entry.user_message for entry in reader.all_logs(run_id) if not entry.is_dagster_event]
        assert "tiny_table written" in logged
    assert query(postgres, "SELECT status FROM runs WHERE run_id = %s", (run_id,)) == [("SUCCESS",)]
    assert query(postgres, "SELECT COUNT(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
                 (run_id, DagsterEventType.ASSET_MATERIALIZATION.value)) == [(1,)]


def test_pool_slots_live_in_postgres_and_are_shared_by_every_process(production_home, postgres):
    with instance_at(production_home) as first, instance_at(production_home) as second:
        # A step of the pool claims its slot: the pool is created at the default limit of 1.
        assert materialize([tiny_table], instance=first).success
        assert query(postgres, 'SELECT concurrency_key, "limit", using_default_limit FROM concurrency_limits') \
            == [("warehouse", 1, True)]

        # A step of one process holds the slot; another process sees it held and cannot take it.
        holder = first.event_log_storage.claim_concurrency_slot("warehouse", "run-one", "ga4_events")
        assert holder.is_claimed
        waiter = second.event_log_storage.claim_concurrency_slot("warehouse", "run-two", "ga4_events")
        assert not waiter.is_claimed
        assert query(postgres, "SELECT run_id, step_key FROM concurrency_slots WHERE concurrency_key = 'warehouse'") \
            == [("run-one", "ga4_events")]

        # Freeing it through the other process (as run monitoring does for a dead run) hands it to the waiter.
        second.event_log_storage.free_concurrency_slots_for_run("run-one")
        assert first.event_log_storage.claim_concurrency_slot("warehouse", "run-two", "ga4_events").is_claimed
        first.event_log_storage.free_concurrency_slots_for_run("run-two")
        assert first.event_log_storage.get_concurrency_info("warehouse").claimed_slots == []
