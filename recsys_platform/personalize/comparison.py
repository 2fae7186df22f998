"""The v1-vs-v2 experiment: purchases only (v1) vs every event type (v2), trained on the same window.

Two tables side by side. Personalize's own offline metrics (GetSolutionMetrics) are what the service
reports, but its held-out targets differ between the two (v2's include views, which are easier to
predict), so they are not comparable. The platform's holdout metrics score both versions on the same
held-out purchases, with the number of users scored, bootstrap intervals and a paired verdict.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from recsys_platform.evaluation.compare import paired_difference
from recsys_platform.partitions import daily_partitions
from recsys_platform.personalize.bootstrap import bootstrap, find_solution_arn
from recsys_platform.personalize.config import load_setup
from recsys_platform.personalize.holdout_scoring import HoldoutScore, load_holdout, score_on_holdout
from recsys_platform.personalize.snapshots import DEFAULT_WINDOW_DAYS, minimums_check, training_window, window_params
from recsys_platform.personalize.training import (
    GROUP,
    TRAINING_POOL,
    PersonalizeWaitConfig,
    compact_date,
    latest_metadata,
    personalize_dataset_import,
    train_solution_version,
)
from recsys_platform.resources.lake import LakeResource
from recsys_platform.resources.personalize import PersonalizeResource
from recsys_platform.resources.warehouse import Warehouse

# The article's headline rows first, then the rest of GetSolutionMetrics.
ARTICLE_METRICS = (
    ("NDCG@25", "normalized_discounted_cumulative_gain_at_25"),
    ("Precision@5", "precision_at_5"),
    ("MRR@25", "mean_reciprocal_rank_at_25"),
    ("Coverage", "coverage"),
    ("NDCG@5", "normalized_discounted_cumulative_gain_at_5"),
    ("NDCG@10", "normalized_discounted_cumulative_gain_at_10"),
    ("Precision@10", "precision_at_10"),
    ("Precision@25", "precision_at_25"),
)
LABELS = {"v1": "Ver1 (purchases only)", "v2": "Ver2 (all events)"}


def _change(before: float, after: float) -> str:
    if before != before or after != after:
        return "n/a"
    if before == 0:
        return f"{after - before:+.3f}"
    return f"{(after - before) / before:+.0%}"


def personalize_metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    rows = [f"| Metric | {LABELS['v1']} | {LABELS['v2']} | Change |", "|---|---|---|---|"]
    for label, key in ARTICLE_METRICS:
        v1, v2 = metrics["v1"].get(key, float("nan")), metrics["v2"].get(key, float("nan"))
        rows.append(f"| {label} | {v1:.3f} | {v2:.3f} | {_change(v1, v2)} |")
    return "\n".join(rows)


def holdout_table(scores: dict[str, HoldoutScore], target_event_type: str) -> str:
    rows = [
        f"| Metric (same held-out {target_event_type} targets) | {LABELS['v1']} | {LABELS['v2']} | "
        "v2 - v1 (95% CI) | Verdict |",
        "|---|---|---|---|---|",
    ]
    for label, key in ARTICLE_METRICS:
        v1, v2 = scores["v1"].metrics[key], scores["v2"].metrics[key]
        if key == "coverage":
            rows.append(f"| {label} | {v1:.3f} | {v2:.3f} | {v2 - v1:+.3f} | (catalogue share) |")
            continue
        low1, high1 = scores["v1"].interval(key)
        low2, high2 = scores["v2"].interval(key)
        paired = paired_difference(scores["v2"].per_user, scores["v1"].per_user, key)
        verdict = {"A better": "v2 better", "B better": "v1 better"}.get(paired.verdict(), paired.verdict())
        rows.append(
            f"| {label} | {v1:.3f} [{low1:.3f}, {high1:.3f}] | {v2:.3f} [{low2:.3f}, {high2:.3f}] | "
            f"{paired.difference:+.3f} [{paired.low:+.3f}, {paired.high:+.3f}] | {verdict} |"
        )
    rows.append(f"\nUsers scored: {len(scores['v1'].per_user)} (held-out users with a {target_event_type} in the "
                "holdout period).")
    return "\n".join(rows)


@asset(
    group_name=GROUP,
    kinds={"personalize"},
    partitions_def=daily_partitions,
    deps=[personalize_dataset_import, "personalize_interactions_csv", "personalize_items_csv"],
    pool=TRAINING_POOL,
)
def personalize_model_comparison(
    context: AssetExecutionContext,
    config: PersonalizeWaitConfig,
    personalize: PersonalizeResource,
    lake: LakeResource,
    warehouse: Warehouse,
) -> MaterializeResult:
    """The v1-vs-v2 experiment on this day's imported data: a purchases-only (v1) and an all-events
    (v2) solution version trained on the same window, shown side by side as Personalize reports them
    (not comparable across training data) and as the platform scores them on the same held-out
    purchases (comparable, with intervals)."""
    setup = load_setup()
    for variant in ("v1", "v2"):
        if variant not in setup.comparison:
            raise ValueError(f"personalize.yaml: comparison.{variant} is missing")
    window_days = int(latest_metadata(context, "personalize_interactions_csv").get("window_days", DEFAULT_WINDOW_DAYS))
    window = training_window(context.partition_key, window_days, setup)
    # Fail with the numbers now rather than with a failed training later (v1 sees purchases only).
    for variant, spec in setup.comparison.items():
        minimums = minimums_check(warehouse, window_params(window, setup), spec.event_type)
        if not minimums.passed:
            raise ValueError(f"{variant} ({spec.event_type or 'all event types'}) cannot be trained: {minimums.description}")
    client = personalize.get_client()
    arns = bootstrap(client, setup, config.policy(), extra_solutions=tuple(setup.comparison.values()))
    day = compact_date(context.partition_key)
    versions, reported = {}, {}
    for variant, spec in setup.comparison.items():
        solution_arn = find_solution_arn(client, arns.dataset_group_arn, spec.name)
        version, metrics, _ = train_solution_version(
            context, client, solution_arn, f"recsys-{variant}-{day}", "FULL", config.policy()
        )
        versions[variant], reported[variant] = version["solutionVersionArn"], metrics

    holdout = load_holdout(warehouse, lake, window, setup, context.run.run_id)
    catalog_size = int(latest_metadata(context, "personalize_items_csv")["rows"])
    scores = {
        variant: score_on_holdout(client, lake, arn, holdout, f"recsys-compare-{day}", personalize.service_role_arn,
                                  setup.gate.num_results, catalog_size, config.policy(), log=context.log.info)
        for variant, arn in versions.items()
    }
    table = (
        "### As Personalize reports them (GetSolutionMetrics; targets differ, not comparable)\n\n"
        + personalize_metrics_table(reported)
        + "\n\n### On the platform holdout (same targets, comparable)\n\n"
        + holdout_table(scores, setup.holdout.target_event_type)
    )
    metadata = {"comparison": MetadataValue.md(table), "window": f"{window.start} .. {window.training_date}",
                "holdout_users": MetadataValue.int(len(holdout.targets))}
    for variant in ("v1", "v2"):
        metadata[f"{variant}_solution_version_arn"] = versions[variant]
        for label, key in ARTICLE_METRICS[:4]:
            metadata[f"{variant}_personalize_{key}"] = MetadataValue.float(float(reported[variant].get(key, float("nan"))))
            metadata[f"{variant}_holdout_{key}"] = MetadataValue.float(float(scores[variant].metrics[key]))
    return MaterializeResult(metadata=metadata)
