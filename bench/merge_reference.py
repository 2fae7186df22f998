"""The GA4 merge against bare DuckDB, on the same simulated shard the pipeline merged.

Each statement of `bench/sql/merge_*.sql` (measurement references, not pipeline code) runs in a fresh
process on a fresh output file, with the platform's own DuckDB settings (memory limit, threads, insertion
order), and is timed around the one statement:

- `merge_copy_all_columns`: every column of the shard copied, nothing else (the floor);
- `merge_window_qualify`, `merge_hash_arg_min`, `merge_keys_then_rows`: the merge's result (same rows and
  columns) written three ways; the best of them is "the best plain DuckDB SQL";
- `platform_statement`: the platform's own `ga4_events.sql`, translated by the platform's warehouse exactly
  as a run translates it, as one CREATE TABLE AS: the statement alone, without the step's checks and
  metadata queries that its `sql_seconds` also counts.

None of them sorts: the platform writes a day unsorted on DuckDB (sorting a 1M-event day's wide rows by
event_name cost more than the zone maps save its readers; BigQuery clusters instead), so neither do the
references.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.proctree import measure_command

SQL_DIR = Path(__file__).resolve().parent / "sql"
REFERENCES = ("merge_copy_all_columns", "merge_window_qualify", "merge_hash_arg_min", "merge_keys_then_rows")
DEDUP_REFERENCES = REFERENCES[1:]
PLATFORM = "platform_statement"


def _settings() -> dict:
    from recsys_platform.lib.warehouse.duckdb_engine import DuckDBWarehouse

    fields = DuckDBWarehouse.model_fields
    return {"memory_limit": fields["memory_limit"].default, "threads": fields["threads"].default}


def _one(name: str, export_path: str, property_id: str, day: str, out_path: str) -> dict:
    """In a fresh process: run one statement, return its seconds and the rows written."""
    import duckdb

    settings = _settings()
    suffix = day.replace("-", "")
    if name == PLATFORM:
        return _platform_statement(export_path, property_id, day, out_path)
    sql = (SQL_DIR / f"{name}.sql").read_text().format(shard_table=f"analytics_{property_id}.events_{suffix}",
                                                        suffix=suffix, day=day)
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "memory_limit": settings["memory_limit"],
                                             "threads": settings["threads"], "preserve_insertion_order": False})
    con.execute("ATTACH ? AS shard (READ_ONLY)", [export_path])
    con.execute("ATTACH ? AS out", [out_path])
    started = time.perf_counter()
    con.execute(sql)
    seconds = time.perf_counter() - started
    (rows,) = con.execute("SELECT count(*) FROM out.ga4_events").fetchone()
    con.close()
    return {"seconds": seconds, "rows": int(rows)}


def _platform_statement(export_path: str, property_id: str, day: str, out_path: str) -> dict:
    from recsys_platform.defs.ga4.events import plan_merge
    from recsys_platform.defs.ga4.ga4_setup import load_ga4_setup
    from recsys_platform.defs.product_db.contract import load_contract
    from recsys_platform.lib.partitions import PartitionRange
    from recsys_platform.lib.warehouse.duckdb_engine import DuckDBWarehouse
    from recsys_platform.settings import PlatformSettings
    from recsys_platform.shared.bigquery_on_duckdb import used_params

    # The simulated shop's product DB sits beside its export (the merge reads its erasure requests).
    warehouse = DuckDBWarehouse(warehouse_path=out_path, export_path=export_path,
                                product_db_path=str(Path(export_path).with_name("product_db.duckdb")),
                                ga4_property_id=property_id)
    settings = PlatformSettings.from_environment()
    setup, contract = load_ga4_setup(), load_contract(settings.product_db_contract)
    first = dt.date.fromisoformat(day)
    # What the ga4_events asset builds for the day: the same sources, statement and parameters.
    merge = plan_merge(warehouse, PartitionRange(first, first), setup, contract, settings.timezone)
    params = merge.params
    with warehouse._connect() as con:  # the platform's connection: its settings and attached catalogs
        select = warehouse._translate(con, merge.statement("ga4_events.sql"), params)
        started = time.perf_counter()
        con.execute(f"CREATE TABLE warehouse.recsys.ga4_events AS SELECT * FROM ({select})",
                    used_params(select, params))
        seconds = time.perf_counter() - started
        (rows,) = con.execute("SELECT count(*) FROM warehouse.recsys.ga4_events").fetchone()
    return {"seconds": seconds, "rows": int(rows)}


def run_references(export_path: Path, property_id: str, day: str, repeats: int, work: Path,
                   env: dict, skip: tuple[str, ...] = ()) -> dict:
    """Every reference `repeats` times (interleaved), each in its own process; medians and peak RSS."""
    work.mkdir(parents=True, exist_ok=True)
    samples: dict[str, list[dict]] = {name: [] for name in (*REFERENCES, PLATFORM) if name not in skip}
    errors = {}
    for repeat in range(repeats):
        for name in samples:
            if name in errors:
                continue
            with tempfile.TemporaryDirectory(dir=work) as scratch:
                out_json = Path(scratch) / "result.json"
                try:
                    measured = measure_command(
                        [sys.executable, "-m", "bench.merge_reference", "--one", name, str(export_path), property_id,
                         day, str(Path(scratch) / "out.duckdb"), str(out_json)],
                        env, Path(scratch) / "proctree.json", Path(scratch) / "log.txt")
                except RuntimeError as error:
                    errors[name] = str(error)[-1500:]
                    continue
                sample = json.loads(out_json.read_text())
                sample["peak_rss_mb"] = measured["max_process_peak_rss_mb"]
                samples[name].append(sample)
    result = {}
    for name, runs in samples.items():
        if not runs:
            result[name] = {"error": errors.get(name, "no sample")}
            continue
        result[name] = {
            "seconds_median": round(statistics.median(r["seconds"] for r in runs), 3),
            "seconds_all": [round(r["seconds"], 3) for r in runs],
            "rows": runs[0]["rows"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        }
    for name in skip:
        result[name] = {"skipped": True}
    dedup = {n: result[n]["seconds_median"] for n in DEDUP_REFERENCES if "seconds_median" in result[n]}
    if dedup:
        best = min(dedup, key=dedup.get)
        result["best_dedup"] = {"name": best, "seconds_median": dedup[best], "rows": result[best]["rows"]}
    return result


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--one":
    _, _, name, export, prop, day_arg, out, result_file = sys.argv
    os.environ.setdefault("RECSYS_ENV", "local")
    Path(result_file).write_text(json.dumps(_one(name, export, prop, day_arg, out)))
