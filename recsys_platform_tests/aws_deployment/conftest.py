"""The aws deployment (RECSYS_ENV=aws) run whole on the local cloud, once per test module.

A small shop with a Datastream replica (INT64 ids, DATETIME columns) in America/New_York. The export's
first three days were written before GA4 added `items.item_params` (their shards lack the field); the
fourth day's shard, which has it (with values), is delivered only after the first merge, from another
process, as GA4's exporter writes into the dataset. Then, through the real clients and the definitions
built from the local cloud's environment:
  1. ga4_daily_job over days 1-3 as one run (a backfill); a ga4_export_sensor tick then finds nothing new;
  2. personalize_retraining_job for day 3 (the first campaign);
  3. day 4 arrives; a sensor tick requests its run, which is executed as requested;
  4. personalize_retraining_job for day 4 (through the gate).
Every AWS call the pipeline signs is recorded by a botocore hook on each session it creates.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PROPERTY = "123456789"
TIMEZONE = "America/New_York"
FIRST_DAY = dt.date(2026, 3, 2)
DAYS = 4
RANGE_LAST_DAY = FIRST_DAY + dt.timedelta(days=DAYS - 2)  # days 1-3 merge as one run
LATER_DAY = FIRST_DAY + dt.timedelta(days=DAYS - 1)  # day 4 arrives later, with items.item_params
ITEM_PARAM = ("size", "M")  # what the later day's items carry in item_params
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
# An operator's run config: the steps that wait on Personalize poll loopback every 0.25 s at most instead
# of backing off towards a minute (which suits hours-long trainings, not a test's seconds-long ones).
FAST_POLLING = {"ops": {step: {"config": {"poll_seconds": 0.25}} for step in (
    "personalize_dataset_import", "personalize_solution_version", "personalize_campaign")}}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")


@dataclass(frozen=True)
class SignedCall:
    """One request a botocore client of this process sent, and the key it was signed with."""

    service: str  # the client's service name (s3, sts, personalize, personalize-runtime, ...)
    operation: str
    access_key_id: str | None
    url: str


@dataclass
class SignedCalls:
    """Records every request of every botocore session created while installed (`before-send`)."""

    calls: list[SignedCall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, monkeypatch) -> None:
        import botocore.session

        original = botocore.session.Session.__init__
        recorder = self

        def init(session, *args, **kwargs):
            original(session, *args, **kwargs)
            session.register("before-send", recorder._record)

        monkeypatch.setattr(botocore.session.Session, "__init__", init)

    def _record(self, request, event_name: str = "", **kwargs) -> None:
        authorization = request.headers.get("Authorization") or b""
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        match = _CREDENTIAL.search(authorization)
        _, service, operation = (event_name.split(".") + ["", "", ""])[:3]
        with self._lock:
            self.calls.append(SignedCall(service, operation, match.group(1) if match else None, request.url))

    def snapshot(self) -> list[SignedCall]:
        with self._lock:
            return list(self.calls)


@dataclass
class Deployment:
    cloud: object
    defs: object
    range_run: object
    first_training: object
    day_run: object
    second_training: object
    tick_after_range: object  # the sensor's tick after the backfill (SensorExecutionData)
    tick_after_delivery: object  # ... and after day 4 arrived
    items_fields_before: list[str]  # ga4_events.items' fields after days 1-3
    rows_before: dict[str, int]  # ga4_events rows per day after days 1-3
    pipeline_calls: list[SignedCall]  # what the pipeline signed during the four runs


def failures(result) -> str:
    """The failed steps' errors of a run, for assertion messages."""
    lines = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None) if event.is_failure else None
        if error is not None:
            lines.append(f"{event.step_key}: {error.to_string()}")
    return "\n".join(lines) or "(no step failed)"


def _strip_item_params(export_db: Path) -> None:
    """Rewrite every shard without `items.item_params`, as GA4 exported days before it added the field."""
    import duckdb

    from recsys_platform.standins.ga4_simulator.ga4_schema import ITEM_FIELDS

    fields = ", ".join(f"{name} := i.{name}" for name, _ in ITEM_FIELDS if name != "item_params")
    dataset = f"analytics_{PROPERTY}"
    with duckdb.connect(str(export_db)) as connection:
        tables = [row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_name LIKE 'events_%'",
            [dataset]).fetchall()]
        for table in tables:
            connection.execute(f'CREATE OR REPLACE TABLE {dataset}."{table}" AS SELECT * REPLACE '
                               f'(list_transform(items, lambda i: struct_pack({fields})) AS items) '
                               f'FROM {dataset}."{table}"')


def _hold_back_later_day(export_db: Path, parquet: Path) -> None:
    """Take day 4's shard out of the export (to deliver later) and give its items an item_param."""
    import duckdb
    import pyarrow.parquet as pq

    from recsys_platform.standins.ga4_simulator.export_store import drop_shard, read_shard

    shard = read_shard(export_db, PROPERTY, LATER_DAY)
    key, value = ITEM_PARAM
    param = (f"[{{'key': '{key}', 'value': {{'string_value': '{value}', 'int_value': NULL::BIGINT, "
             f"'float_value': NULL::DOUBLE, 'double_value': NULL::DOUBLE}}}}]")
    with duckdb.connect() as connection:
        connection.register("shard", shard)
        with_params = connection.sql(
            f"SELECT * REPLACE (list_transform(items, lambda i: struct_update(i, item_params := {param})) AS items) "
            "FROM shard").to_arrow_table()
    pq.write_table(with_params, parquet)
    drop_shard(export_db, PROPERTY, LATER_DAY)


def deliver_later_day(export_db: Path, parquet: Path) -> None:
    """GA4's exporter writes day 4's shard: from another process, as the stand-in serves the file."""
    code = ("import sys, datetime, pyarrow.parquet as pq\n"
            "from recsys_platform.standins.ga4_simulator.export_store import write_shard\n"
            "write_shard(sys.argv[1], sys.argv[2], datetime.date.fromisoformat(sys.argv[3]), [pq.read_table(sys.argv[4])])\n")
    done = subprocess.run([sys.executable, "-c", code, str(export_db), PROPERTY, LATER_DAY.isoformat(), str(parquet)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def items_fields(client, table_id: str) -> list[str]:
    items = next(f for f in client.get_table(table_id).schema if f.name == "items")
    return [f.name for f in items.fields]


def _sensor_tick(defs, instance, cursor: str | None = None):
    from dagster import build_sensor_context

    sensor = defs.resolve_sensor_def("ga4_export_sensor")
    with build_sensor_context(instance=instance, definitions=defs, cursor=cursor,
                              resources={"warehouse": defs.resources["warehouse"]}) as context:
        return sensor.evaluate_tick(context)


def _day_run_request(tick):
    """The sensor's request for the later day; None if it did not make exactly that one (a check says so)."""
    requests = tick.run_requests or []
    if len(requests) == 1 and requests[0].partition_key == LATER_DAY.isoformat():
        return requests[0]
    return None


def _run_job(defs, name: str, instance, **options):
    run_config = {**QUIET_LOGS, **(FAST_POLLING if name == "personalize_retraining_job" else {})}
    return defs.resolve_job_def(name).execute_in_process(instance=instance, raise_on_error=False,
                                                          run_config=run_config, **options)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    from dagster import DagsterInstance
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from recsys_platform.definitions import build_definitions
    from recsys_platform.lib.partitions import PartitionRange
    from recsys_platform.lib.table_stats import rows_per_day
    from recsys_platform.settings import PlatformSettings
    from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
    from recsys_platform.standins.local_cloud import UNSET_VARIABLES, LocalCloudConfig, start_local_cloud

    folder = tmp_path_factory.mktemp("aws")
    shop = simulate(SimulationConfig(
        home=folder / "shop", property_id=PROPERTY, timezone=TIMEZONE, days=DAYS, start_date=FIRST_DAY,
        events_per_day=1_500, users=300, items=150, seed=11, replica_layout="datastream", streaming_export=False,
    ))
    later_day = folder / "later_day.parquet"
    _hold_back_later_day(shop.export_db, later_day)
    _strip_item_params(shop.export_db)
    cloud = start_local_cloud(LocalCloudConfig(
        state_dir=folder / "cloud", export_db=shop.export_db, product_db=shop.product_db, property_id=PROPERTY,
        timezone=TIMEZONE, personalize_options={"step_delay": 0.02},
    ))
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name in UNSET_VARIABLES:
                patch.delenv(name, raising=False)
            for name, value in cloud.environment.items():
                patch.setenv(name, value)
            patch.setenv("RECSYS_HOME", str(folder / "home"))  # nothing of an embedded default's state
            patch.setenv("RECSYS_START_DATE", FIRST_DAY.isoformat())
            patch.delenv("DAGSTER_HOME", raising=False)
            signed = SignedCalls()
            signed.install(patch)
            defs = build_definitions(PlatformSettings.from_environment(read_dotenv=False))
            instance = DagsterInstance.ephemeral()
            range_run = _run_job(defs, "ga4_daily_job", instance, tags={
                ASSET_PARTITION_RANGE_START_TAG: FIRST_DAY.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: RANGE_LAST_DAY.isoformat()})
            assert range_run.success, failures(range_run)
            with cloud.bigquery_client() as client:
                fields_before = items_fields(client, "shop-platform.recsys.ga4_events")
            with defs.resources["warehouse"].process_config_and_initialize_cm() as warehouse:
                rows_before = rows_per_day(warehouse, "ga4_events", PartitionRange(FIRST_DAY, RANGE_LAST_DAY))
            tick_after_range = _sensor_tick(defs, instance)  # an empty cursor: seeded from what was merged
            first_training = _run_job(defs, "personalize_retraining_job", instance,
                                      partition_key=RANGE_LAST_DAY.isoformat())
            deliver_later_day(shop.export_db, later_day)
            tick_after_delivery = _sensor_tick(defs, instance, tick_after_range.cursor)
            request = _day_run_request(tick_after_delivery)
            day_run = _run_job(defs, "ga4_daily_job", instance, partition_key=LATER_DAY.isoformat(),
                               tags=request.tags if request is not None else {})
            second_training = _run_job(defs, "personalize_retraining_job", instance,
                                       partition_key=LATER_DAY.isoformat())
            yield Deployment(cloud, defs, range_run, first_training, day_run, second_training, tick_after_range,
                             tick_after_delivery, fields_before, rows_before, signed.snapshot())
    finally:
        cloud.stop()
