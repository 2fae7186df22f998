"""`recsys-platform demo` (what `make demo` runs): the whole platform on the embedded default.

Simulates a few weeks of a shop's GA4 export and product DB ending yesterday, starts the local
Personalize, runs the GA4 day job over the range as one run (a single-run backfill), then the
Personalize retraining job, and prints what each stage produced: rows per asset, the solution version's
metrics, recommendations fetched with boto3 from the campaign, and the v1-vs-v2 comparison. Runs are
recorded in $DAGSTER_HOME when it is set, so `make dev` shows them afterwards."""

from __future__ import annotations

import datetime as dt
import os
import time
from zoneinfo import ZoneInfo

# The demo prints its own summary; Dagster's console logger only speaks up for warnings and errors.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
GA4_TABLES = ["ga4_events", "ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases", "interactions"]
DEMO_USERS = 3
NUM_RESULTS = 10


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="simulate a shop and run the whole platform on it, locally")
    parser.add_argument("--days", type=int, default=28, help="days of GA4 export to simulate (default 28)")
    parser.add_argument("--events-per-day", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-personalize", action="store_true", help="stop after the interactions table")
    parser.set_defaults(func=run)


def run(args) -> int:
    import warnings

    from dagster import BetaWarning, PreviewWarning, SupersessionWarning

    # The demo is for reading; Dagster's notes on beta and superseded APIs belong in the UI, not here.
    for category in (BetaWarning, PreviewWarning, SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)
    from recsys_platform.settings import PlatformSettings
    from recsys_platform.standins.local_personalize.server import start_in_background

    if args.days < 1:
        raise SystemExit("--days must be at least 1")
    settings = PlatformSettings.from_environment()
    if settings.deployment != "local":
        raise SystemExit("`recsys-platform demo` runs the embedded default: unset RECSYS_ENV (or set it to local)")
    settings.home.mkdir(parents=True, exist_ok=True)
    server = None
    if not os.environ.get("RECSYS_PERSONALIZE_ENDPOINT_URL") and not args.skip_personalize:
        # The pipeline reaches the local Personalize only over HTTP, like Amazon Personalize.
        server = start_in_background(settings.paths.personalize_state, settings.paths.lake)
        os.environ["RECSYS_PERSONALIZE_ENDPOINT_URL"] = server.endpoint_url
    try:
        return _run_demo(args, settings)
    finally:
        if server is not None:
            server.stop()
            del os.environ["RECSYS_PERSONALIZE_ENDPOINT_URL"]


def _run_demo(args, settings) -> int:
    from dagster import DagsterInstance
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from recsys_platform.definitions import build_definitions
    from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate

    yesterday = dt.datetime.now(ZoneInfo(settings.timezone)).date() - dt.timedelta(days=1)
    first_day = yesterday - dt.timedelta(days=args.days - 1)
    defs = build_definitions(settings)

    print(f"state folder: {settings.home}")
    started = time.perf_counter()
    summary = simulate(SimulationConfig(
        home=settings.home, property_id=settings.ga4_property_id, timezone=settings.timezone, days=args.days,
        start_date=first_day, events_per_day=args.events_per_day, seed=args.seed,
    ))
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
    _print_merge(result)
    _print_rows(defs.resources["warehouse"], first_day, yesterday)
    if args.skip_personalize:
        return 0
    return _run_personalize(defs, instance, training_date=yesterday)


def _print_merge(result) -> None:
    """What the merge read and left behind: the export table each day came from, consent, scrubbed PII."""
    # A range run reports each day, with the same metadata (the step covered the whole range).
    merged = next(e.materialization for e in result.get_asset_materialization_events()
                  if e.materialization.asset_key.to_user_string() == "ga4_events")
    meta = {k: v.value for k, v in merged.metadata.items()}
    kinds: dict[str, list[str]] = {}
    for day, table in sorted(meta["sources"].items()):
        kind = "intraday" if table.startswith("events_intraday_") else "fresh" if table.startswith("events_fresh_") \
            else "daily"
        kinds.setdefault(kind, []).append(day)
    print("\nGA4 merge")
    for kind, days in kinds.items():
        print(f"  {len(days):>3} day(s) from the {kind} table" + (f": {', '.join(days)}" if kind != "daily" else ""))
    print(f"  {meta['rows_read']:,} rows read, {meta['dagster/row_count']:,} events kept, "
          f"{meta['duplicates_removed']:,} re-deliveries collapsed, "
          f"{sum(v for k, v in meta.items() if k.startswith('dropped_')):,} unusable rows left out")
    print(f"  consent denied (cookieless pings, kept out of interactions): {meta['consent_denied_rows']:,} "
          f"({meta['consent_denied_share']:.1%})")
    print(f"  page URLs whose query string was cut to the allow-list (e-mails, tokens...): "
          f"{meta['page_locations_scrubbed']:,}; "
          f"e-mail addresses refused as user_id: {meta['user_ids_refused_as_email']:,}")


def _print_rows(warehouse, first_day: dt.date, last_day: dt.date) -> None:
    from recsys_platform.lib.partitions import PartitionRange
    from recsys_platform.lib.table_stats import rows_per_day, total_rows

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


def _run_personalize(defs, instance, training_date: dt.date) -> int:
    """The retraining job and the v1-vs-v2 experiment for `training_date`, and what they produced: the
    chain's decisions, recommendations with and without the exclude-purchased filter, and one user's
    recommendations before and after a few real-time events (PutEvents)."""
    from dagster import AssetKey

    partition = training_date.isoformat()
    started = time.perf_counter()
    result = defs.resolve_job_def("personalize_retraining_job").execute_in_process(
        instance=instance, partition_key=partition, raise_on_error=False, run_config=QUIET_LOGS
    )
    if not result.success:
        print(f"personalize_retraining_job for {partition} failed; see the run's events")
        return 1
    print(f"\npersonalize_retraining_job for {partition}  [{time.perf_counter() - started:.1f}s]")
    campaign = _print_chain(result)
    window = result.asset_value("personalize_interactions_csv").window
    _print_recommendations(defs, campaign, window)

    started = time.perf_counter()
    comparison = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, partition_key=partition, asset_selection=[AssetKey("personalize_model_comparison")],
        raise_on_error=False, run_config=QUIET_LOGS,
    )
    if not comparison.success:
        print("personalize_model_comparison failed; see the run's events")
        return 1
    print(f"\nv1 vs v2 on the same window  [{time.perf_counter() - started:.1f}s]\n")
    print(comparison.asset_value("personalize_model_comparison").table)
    # After the experiment: recorded events join every later training, and the experiment trains too.
    _print_real_time_events(defs, campaign, window)
    return 0


def _print_chain(result):
    """Prints the chain's hand-offs (the typed values the steps passed on); returns the campaign's."""
    print("\nPersonalize chain")
    for dataset in ("interactions", "items", "users"):
        snapshot = result.asset_value(f"personalize_{dataset}_csv")
        window = f"  window {snapshot.window.label}" if snapshot.window else ""
        print(f"  snapshot {dataset:<13}{snapshot.rows:>10,} rows  {snapshot.uri}{window}")
        if snapshot.increment is not None:
            print(f"  {'':<22}{snapshot.increment.rows:>10,} rows of {snapshot.increment.last_day} alone "
                  "(what an INCREMENTAL import appends)")
    imported = result.asset_value("personalize_dataset_import")
    print(f"  dataset import: interactions {imported.import_mode} ({imported.import_reason})")
    for dataset, job in imported.datasets.items():
        print(f"    {dataset:<13}{job.import_mode:<12}{job.job_name}  {'resumed' if job.resumed else 'new'}, "
              f"{job.rows:,} rows")
    version = result.asset_value("personalize_solution_version")
    print(f"  solution version {version.name}  ({version.recipe_arn.rsplit('/', 1)[-1]}, "
          f"{version.event_type or '(all event types)'}, {version.training_mode}: {version.training_reason})")
    for key, value in sorted(version.metrics.items()):
        print(f"    {key:<46}{value:.4f}")
    campaign = result.asset_value("personalize_campaign")
    print(f"  campaign: {campaign.decision}")
    print(f"    serving {campaign.serving_solution_version_arn} since {campaign.serving_since.isoformat()}")
    for name, arn in campaign.filter_arns.items():
        role = "  (what users get; the gate scores with it)" if arn == campaign.serving_filter_arn else ""
        print(f"    filter {name}: {arn}{role}")
    print(f"    event tracker {campaign.event_tracker_arn}  trackingId {campaign.tracking_id}")
    return campaign


def _print_recommendations(defs, campaign, window) -> None:
    from recsys_platform.lib.sql_files import read_sql

    users = defs.resources["warehouse"].query(
        read_sql(__file__, "demo_users.sql"),
        {"window_start": window.start, "window_end": window.training_date, "limit": DEMO_USERS},
    ).column("USER_ID").to_pylist()
    print(f"\nrecommendations from the campaign (boto3 personalize-runtime get_recommendations, top {NUM_RESULTS})")
    with defs.resources["personalize"].process_config_and_initialize_cm() as personalize:
        runtime = personalize.get_runtime_client()
        for user in users:
            started = time.perf_counter()
            items = runtime.get_recommendations(campaignArn=campaign.campaign_arn, userId=user, numResults=NUM_RESULTS)
            elapsed_ms = (time.perf_counter() - started) * 1000
            print(f"  {user}: " + " ".join(i["itemId"] for i in items["itemList"]) + f"  [{elapsed_ms:.0f} ms]")
        if users:
            _print_filtered(defs, runtime, campaign, users[0], window)


EXCLUDE_PURCHASED_FILTER = "recsys-platform-exclude-purchased"
REAL_TIME_VIEWS = 3


def _items(runtime, campaign_arn: str, user: str, count: int = NUM_RESULTS, **request) -> list[str]:
    answer = runtime.get_recommendations(campaignArn=campaign_arn, userId=user, numResults=count, **request)
    return [item["itemId"] for item in answer["itemList"]]


def _print_filtered(defs, runtime, campaign, user: str, window) -> None:
    """One user's recommendations without and with the exclude-purchased filter, and what it removed."""
    filter_arn = campaign.filter_arns.get(EXCLUDE_PURCHASED_FILTER)
    if filter_arn is None:
        return
    bought = set(defs.resources["warehouse"].query(
        "SELECT DISTINCT ITEM_ID FROM recsys.interactions WHERE USER_ID = @user AND EVENT_TYPE = 'purchase' "
        "AND event_date BETWEEN @window_start AND @window_end",
        {"user": user, "window_start": window.start, "window_end": window.training_date},
    ).column("ITEM_ID").to_pylist())
    plain = _items(runtime, campaign.campaign_arn, user)
    filtered = _items(runtime, campaign.campaign_arn, user, filterArn=filter_arn)
    removed = [item for item in plain if item not in filtered]
    print(f"\n{user} without and with the filter {EXCLUDE_PURCHASED_FILTER} ({len(bought)} items bought in the window)")
    print(f"  without: {' '.join(plain)}")
    print(f"  with:    {' '.join(filtered)}")
    print(f"  removed: {' '.join(removed) or '(none)'}"
          + (f"  ({sum(item in bought for item in removed)} of them bought)" if removed else ""))


def _print_real_time_events(defs, campaign, window) -> None:
    """One user's recommendations before and after a few views recorded with PutEvents: the campaign
    folds them in at once, without a retraining. The user is not held out (recorded events join training)."""
    from recsys_platform.defs.personalize.holdout_scoring import held_out
    from recsys_platform.defs.personalize.personalize_setup import load_setup
    from recsys_platform.lib.sql_files import read_sql

    if not campaign.tracking_id:
        return
    warehouse = defs.resources["warehouse"]
    candidates = warehouse.query(
        read_sql(__file__, "demo_users.sql"),
        {"window_start": window.start, "window_end": window.training_date, "limit": DEMO_USERS * 4},
    ).column("USER_ID").to_pylist()
    excluded = held_out(warehouse, load_setup(), candidates)
    users = [user for user in candidates if user not in excluded]
    if len(users) < 2:
        return
    user, other = users[0], users[-1]
    with defs.resources["personalize"].process_config_and_initialize_cm() as personalize:
        runtime = personalize.get_runtime_client()
        before = _items(runtime, campaign.campaign_arn, user)
        # Items another shopper is recommended and this one is not: a taste this user has not shown yet.
        viewed = [item for item in _items(runtime, campaign.campaign_arn, other, 3 * NUM_RESULTS)
                  if item not in before][:REAL_TIME_VIEWS]
        events = personalize.aws.client("personalize-events", personalize.endpoint_url)
        now = dt.datetime.now(dt.timezone.utc)
        started = time.perf_counter()
        events.put_events(trackingId=campaign.tracking_id, userId=user, sessionId=f"demo-{user}", eventList=[
            {"eventType": "view", "itemId": item, "sentAt": now + dt.timedelta(seconds=n)}
            for n, item in enumerate(viewed)
        ])
        after = _items(runtime, campaign.campaign_arn, user)
        elapsed = time.perf_counter() - started
    print(f"\nreal time: {user} views {' '.join(viewed)} (PutEvents, trackingId {campaign.tracking_id})")
    print(f"  before: {' '.join(before)}")
    print(f"  after:  {' '.join(after)}  [{elapsed * 1000:.0f} ms, no retraining]")
    print(f"  {len(set(after) - set(before))} new in the top {NUM_RESULTS}")
