"""`recsys-platform demo` (what `make demo` runs): the whole platform on the embedded default.

Simulates a few weeks of a shop's GA4 export and product DB ending yesterday, runs the GA4 day job over
the range as one run (a single-run backfill), then the Personalize retraining job against the local
Personalize, and prints what each stage produced: rows per asset, the solution version's metrics,
recommendations fetched with boto3 from the campaign, and the v1-vs-v2 comparison. Runs are recorded in
$DAGSTER_HOME when it is set, so `make dev` shows them afterwards."""

from __future__ import annotations

import datetime as dt
import os
import time
from zoneinfo import ZoneInfo

# The demo prints its own summary; Dagster's console logger only speaks up for warnings and errors.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
GA4_TABLES = ["ga4_events", "ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases", "interactions"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="simulate a shop and run the whole platform on it, locally")
    parser.add_argument("--days", type=int, default=28, help="days of GA4 export to simulate (default 28)")
    parser.add_argument("--events-per-day", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-personalize", action="store_true", help="stop after the interactions table")
    parser.set_defaults(func=run)


def run(args) -> int:
    import warnings

    from dagster import BetaWarning, DagsterInstance, PreviewWarning, SupersessionWarning

    # The demo is for reading; Dagster's notes on beta and superseded APIs belong in the UI, not here.
    for category in (BetaWarning, PreviewWarning, SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from recsys_platform.resources import build_warehouse
    from recsys_platform.settings import ga4_timezone, local_paths, recsys_env
    from recsys_platform.simulator.simulation import SimulationConfig, simulate

    if args.days < 1:
        raise SystemExit("--days must be at least 1")
    paths = local_paths()
    paths.home.mkdir(parents=True, exist_ok=True)
    yesterday = dt.datetime.now(ZoneInfo(ga4_timezone())).date() - dt.timedelta(days=1)
    first_day = yesterday - dt.timedelta(days=args.days - 1)
    from recsys_platform.definitions import build_definitions

    # Resources resolved now, from this process's RECSYS_HOME (not whatever it was at first import).
    defs = build_definitions()

    print(f"state folder: {paths.home}")
    started = time.perf_counter()
    summary = simulate(SimulationConfig(days=args.days, start_date=first_day, events_per_day=args.events_per_day,
                                        seed=args.seed))
    print(f"simulated {args.days} days ({first_day}..{yesterday}) of GA4 export: "
          f"{summary.events:,} events  [{time.perf_counter() - started:.1f}s]")

    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = defs.resolve_job_def("ga4_daily_job").execute_in_process(
        instance=instance, run_config=QUIET_LOGS,
        tags={ASSET_PARTITION_RANGE_START_TAG: first_day.isoformat(),
              ASSET_PARTITION_RANGE_END_TAG: yesterday.isoformat()},
    )
    if not result.success:
        print("GA4 day job failed")
        return 1
    print(f"ga4_daily_job over {first_day}..{yesterday} as one run  [{time.perf_counter() - started:.1f}s]")
    _print_rows(build_warehouse(recsys_env()), first_day, yesterday)
    if args.skip_personalize:
        return 0
    from recsys_platform.personalize.demo import run_personalize_demo

    return run_personalize_demo(defs, instance, training_date=yesterday)


def _print_rows(warehouse, first_day: dt.date, last_day: dt.date) -> None:
    from recsys_platform.table_stats import PartitionRange, rows_per_day, total_rows

    print("\nrows per asset")
    print(f"  {'asset':<22}{'rows':>12}")
    days = PartitionRange(first_day, last_day)
    for table in GA4_TABLES:
        print(f"  {table:<22}{sum(rows_per_day(warehouse, table, days).values()):>12,}")
    for table in ("items", "users", "orders", "order_items"):
        print(f"  {'product_db/' + table:<22}{total_rows(warehouse, 'product_db', table):>12,}")
    by_type = warehouse.query(
        "SELECT EVENT_TYPE AS t, COUNT(*) AS n, COUNT(DISTINCT USER_ID) AS users FROM recsys.interactions "
        "WHERE event_date BETWEEN @first_day AND @last_day GROUP BY 1 ORDER BY 2 DESC",
        days.params,
    ).to_pylist()
    print("  interactions by EVENT_TYPE: " + ", ".join(f"{r['t']} {r['n']:,}" for r in by_type))
