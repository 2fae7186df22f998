"""`ga4_export_sensor` over an export of 1,000 daily shards: tick time and the queries one tick issues.

The export is a DuckDB file in the simulator's layout: `recsys-platform simulate` writes one small day,
then 999 more shards are cloned from it (a few rows each) and listed in the dataset's `__TABLES__`
meta-table with their own modification times. The sensor is the definitions' own
(`build_definitions(PlatformSettings.from_environment()).resolve_sensor_def("ga4_export_sensor")`),
evaluated with `dagster.build_sensor_context` and its warehouse resource, in a fresh process:

- `first_tick`: no cursor, every shard is new (1,000 run requests);
- `steady_tick`: the cursor of the first tick, nothing changed (a skip);
- `one_rewrite_tick`: one shard's modification time bumped (one run request).

Each is timed (median of repeats). During one tick of each kind, every DuckDB connection and statement is
counted (the warehouse's connection is wrapped), as are calls of `list_export_shards` (one listing per tick
expected) and statements that read a shard's rows (none expected).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

SHARDS = 1000
LAST_DAY = dt.date(2026, 3, 2)
PROPERTY = "123456789"
REPO = Path(__file__).resolve().parents[1]


def write_export(home: Path, shards: int = SHARDS) -> int:
    import duckdb

    first = LAST_DAY - dt.timedelta(days=shards - 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "DAGSTER_"))}
    env.update({"RECSYS_HOME": str(home), "RECSYS_START_DATE": first.isoformat()})
    done = subprocess.run([str(Path(sys.executable).parent / "recsys-platform"), "simulate", "--days", "1",
                           "--start-date", LAST_DAY.isoformat(), "--events-per-day", "300", "--seed", "7"],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"simulate failed:\n{done.stderr[-2000:]}")
    dataset = f"analytics_{PROPERTY}"
    source = f"events_{LAST_DAY:%Y%m%d}"
    con = duckdb.connect(str(home / "ga4_export.duckdb"))
    con.execute("SET enable_progress_bar = false")
    try:
        (template,) = [dict(zip([d[0] for d in con.description], row)) for row in
                       con.execute(f'SELECT * FROM {dataset}."__TABLES__" WHERE table_id = ?', [source]).fetchall()]
        con.execute("BEGIN TRANSACTION")
        for i in range(1, shards):
            day = LAST_DAY - dt.timedelta(days=i)
            table = f"events_{day:%Y%m%d}"
            con.execute(f"CREATE TABLE {dataset}.{table} AS SELECT * REPLACE ('{day:%Y%m%d}' AS event_date) "
                        f"FROM {dataset}.{source} LIMIT 5")
            row = {**template, "table_id": table, "row_count": 5,
                   "creation_time": template["creation_time"] - i * 86_400_000,
                   "last_modified_time": template["last_modified_time"] - i * 86_400_000}
            columns = ", ".join(f'"{c}"' for c in row)
            con.execute(f'INSERT INTO {dataset}."__TABLES__" ({columns}) VALUES ({", ".join("?" * len(row))})',
                        list(row.values()))
        con.execute("COMMIT")
        (listed,) = con.execute(f"""SELECT count(*) FROM {dataset}."__TABLES__"
                                     WHERE regexp_full_match(table_id, 'events_[0-9]{{8}}')""").fetchone()
    finally:
        con.close()
    if listed < shards:  # the simulator may add other tables (intraday, a late day): daily shards are counted
        raise RuntimeError(f"__TABLES__ lists {listed} daily shards, expected {shards}")
    return int(listed)


def bump_one(home: Path) -> None:
    import duckdb

    con = duckdb.connect(str(home / "ga4_export.duckdb"))
    try:
        con.execute(f'UPDATE analytics_{PROPERTY}."__TABLES__" SET last_modified_time = last_modified_time + 1000 '
                    f"WHERE table_id = 'events_{LAST_DAY - dt.timedelta(days=10):%Y%m%d}'")
    finally:
        con.close()


class _Counter:
    def __init__(self) -> None:
        self.connections = 0
        self.statements: list[str] = []
        self.listings = 0
        self.listing_seconds = 0.0


class _CountingConnection:
    """Forwards to a DuckDB connection, counting the statements sent through it."""

    def __init__(self, con, counter: _Counter) -> None:
        self._con = con
        self._counter = counter

    def execute(self, sql, *args, **kwargs):
        self._counter.statements.append(" ".join(str(sql).split())[:160])
        return self._con.execute(sql, *args, **kwargs)

    def sql(self, sql, *args, **kwargs):
        self._counter.statements.append(" ".join(str(sql).split())[:160])
        return self._con.sql(sql, *args, **kwargs)

    def query(self, sql, *args, **kwargs):
        self._counter.statements.append(" ".join(str(sql).split())[:160])
        return self._con.query(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def _measure(home: str, repeats: int, result_file: str) -> None:
    """In a fresh process: build the definitions, evaluate ticks, count what one tick sends to DuckDB."""
    from dagster import DagsterInstance, build_sensor_context

    from recsys_platform.definitions import build_definitions
    from recsys_platform.settings import PlatformSettings

    started = time.perf_counter()
    defs = build_definitions(PlatformSettings.from_environment())
    sensor = defs.resolve_sensor_def("ga4_export_sensor")
    warehouse = defs.resources["warehouse"]
    build_seconds = time.perf_counter() - started
    instance = DagsterInstance.ephemeral()

    def tick(cursor):
        context = build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                       resources={"warehouse": warehouse})
        began = time.perf_counter()
        data = sensor.evaluate_tick(context)
        return time.perf_counter() - began, data

    def counted(cursor):
        counter = _Counter()
        warehouse_class = type(warehouse)
        real_connect = warehouse_class._connect
        # the listing method of the warehouse interface (renamed list_export_shards -> list_export_tables)
        listing_name = next(n for n in ("list_export_tables", "list_export_shards") if hasattr(warehouse_class, n))
        real_listing = getattr(warehouse_class, listing_name)

        @contextmanager
        def connect(self, *args, **kwargs):  # one connection: the warehouse's files attached for one call
            counter.connections += 1
            with real_connect(self, *args, **kwargs) as con:
                yield _CountingConnection(con, counter)

        def listing(self, *args, **kwargs):
            counter.listings += 1
            began = time.perf_counter()
            try:
                return real_listing(self, *args, **kwargs)
            finally:
                counter.listing_seconds += time.perf_counter() - began

        warehouse_class._connect = connect
        setattr(warehouse_class, listing_name, listing)
        try:
            _, data = tick(cursor)
        finally:
            warehouse_class._connect = real_connect
            setattr(warehouse_class, listing_name, real_listing)
        reads = [s for s in counter.statements if "events_2" in s and "__TABLES__" not in s]
        return {"list_export_shards_calls": counter.listings,
                "list_export_shards_seconds": round(counter.listing_seconds, 4), "connections": counter.connections,
                "statements": len(counter.statements), "shard_row_reads": len(reads),
                "statement_texts": counter.statements,
                "run_requests": len(data.run_requests or []),
                "skipped": data.skip_message is not None}

    result = {"definitions_build_seconds": round(build_seconds, 3)}
    tick(None)  # the first evaluation also warms imports inside DuckDB and Dagster
    first = [tick(None) for _ in range(repeats)]
    cursor = first[-1][1].cursor
    steady = [tick(cursor) for _ in range(repeats)]
    result["first_tick"] = {"seconds": [round(s, 4) for s, _ in first], **counted(None)}
    result["steady_tick"] = {"seconds": [round(s, 4) for s, _ in steady], **counted(cursor)}
    bump_one(Path(home))
    rewrite = [tick(cursor) for _ in range(repeats)]
    result["one_rewrite_tick"] = {"seconds": [round(s, 4) for s, _ in rewrite], **counted(cursor)}
    for name in ("first_tick", "steady_tick", "one_rewrite_tick"):
        result[name]["seconds_median"] = round(statistics.median(result[name]["seconds"]), 4)
    Path(result_file).write_text(json.dumps(result, indent=1))


def run(out_dir: Path, quick: bool = False, shards: int | None = None) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = shards or (200 if quick else SHARDS)
    repeats = 5 if quick else 15
    with tempfile.TemporaryDirectory(prefix="recsys-bench-sensor-") as home:
        started = time.perf_counter()
        listed = write_export(Path(home), shards)
        write_seconds = time.perf_counter() - started
        first = LAST_DAY - dt.timedelta(days=shards - 1)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "DAGSTER_"))}
        env.update({"RECSYS_HOME": home, "RECSYS_START_DATE": first.isoformat(), "DAGSTER_DISABLE_TELEMETRY": "1",
                    "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)})
        result_file = Path(home) / "sensor.json"
        done = subprocess.run([sys.executable, "-m", "bench.sensor_tick", "--measure", home, str(repeats),
                               str(result_file)], env=env, cwd=str(REPO), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"sensor measurement failed:\n{done.stderr[-3000:]}")
        result = json.loads(result_file.read_text())
    result.update({"shards": listed, "repeats": repeats, "export_write_seconds": round(write_seconds, 1)})
    print(f"ga4_export_sensor over {listed} shards (median of {repeats})")
    for name in ("first_tick", "steady_tick", "one_rewrite_tick"):
        r = result[name]
        print(f"  {name:18s} {r['seconds_median'] * 1000:8.1f} ms  listing calls {r['list_export_shards_calls']}, "
              f"connections {r['connections']}, statements {r['statements']}, shard reads {r['shard_row_reads']}, "
              f"run requests {r['run_requests']}")
    (out_dir / "sensor_tick.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--measure":
    _measure(sys.argv[2], int(sys.argv[3]), sys.argv[4])
