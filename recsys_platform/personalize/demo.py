"""The Personalize half of `recsys-platform demo`: the retraining job for one day, recommendations
fetched with boto3 from the campaign, and the v1-vs-v2 comparison, printed for a terminal."""

from __future__ import annotations

import datetime as dt
import time

from recsys_platform.personalize.snapshots import DEFAULT_WINDOW_DAYS

DEMO_USERS = 3
NUM_RESULTS = 10


def _metadata(result, asset_name: str) -> dict:
    materializations = result.asset_materializations_for_node(asset_name)
    return {k: v.value for k, v in materializations[0].metadata.items()} if materializations else {}


def _print_chain(result) -> dict:
    print("\nPersonalize chain")
    for dataset in ("interactions", "items", "users"):
        meta = _metadata(result, f"personalize_{dataset}_csv")
        window = f"  window {meta['window']}" if "window" in meta else ""
        print(f"  snapshot {dataset:<13}{meta['rows']:>10,} rows  {meta['uri']}{window}")
    imported = _metadata(result, "personalize_dataset_import")
    print(f"  dataset import ({imported['import_mode']}): "
          + ", ".join(f"{d} {'resumed' if imported[f'{d}_resumed'] else 'done'}" for d in ("interactions", "items", "users")))
    version = _metadata(result, "personalize_solution_version")
    print(f"  solution version {version['name']}  ({version['recipe'].rsplit('/', 1)[-1]}, "
          f"{version['event_type']})")
    for key in sorted(k for k, v in version.items() if isinstance(v, float) and k != "training_hours"):
        print(f"    {key:<46}{version[key]:.4f}")
    campaign = _metadata(result, "personalize_campaign")
    print(f"  campaign: {campaign['decision']}")
    print(f"    serving {campaign['serving_solution_version_arn']} since {campaign['serving_since']}")
    return campaign


def _print_recommendations(defs, campaign_arn: str, training_date: dt.date) -> None:
    from recsys_platform.resources.warehouse import read_sql

    warehouse = defs.resources["warehouse"]
    users = warehouse.query(
        read_sql(__file__, "personalize_demo_users.sql"),
        {"window_start": training_date - dt.timedelta(days=DEFAULT_WINDOW_DAYS - 1), "window_end": training_date,
         "limit": DEMO_USERS},
    ).column("USER_ID").to_pylist()
    print(f"\nrecommendations from the campaign (boto3 personalize-runtime get_recommendations, top {NUM_RESULTS})")
    with defs.resources["personalize"].process_config_and_initialize_cm() as personalize:
        runtime = personalize.get_runtime_client()
        for user in users:
            started = time.perf_counter()
            items = runtime.get_recommendations(campaignArn=campaign_arn, userId=user, numResults=NUM_RESULTS)
            elapsed_ms = (time.perf_counter() - started) * 1000
            print(f"  {user}: " + " ".join(i["itemId"] for i in items["itemList"]) + f"  [{elapsed_ms:.0f} ms]")


def run_personalize_demo(defs, instance, training_date: dt.date) -> int:
    """Runs the retraining job and the v1-vs-v2 experiment for `training_date`; prints what they produced."""
    from dagster import AssetKey

    from recsys_platform.demo import QUIET_LOGS

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
    _print_recommendations(defs, campaign["campaign_arn"], training_date)

    started = time.perf_counter()
    comparison = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, partition_key=partition, asset_selection=[AssetKey("personalize_model_comparison")],
        raise_on_error=False, run_config=QUIET_LOGS,
    )
    if not comparison.success:
        print("personalize_model_comparison failed; see the run's events")
        return 1
    print(f"\nv1 vs v2 on the same window  [{time.perf_counter() - started:.1f}s]\n")
    print(_metadata(comparison, "personalize_model_comparison")["comparison"])
    return 0
