"""The v1-vs-v2 experiment: purchases only (v1) vs every event type (v2), trained on the same window.

Two tables side by side. Personalize's own offline metrics (GetSolutionMetrics) are what the service
reports, but its held-out targets differ between the two (v2's include views, which are easier to
predict), so they are not comparable. The platform's holdout metrics score both versions on the same
held-out purchases, with the number of users scored, bootstrap intervals and a paired verdict.
"""

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recsys_platform.defs.personalize.provisioning import find_solution_arn, provision
from recsys_platform.defs.personalize.dataset_import import compact_date
from recsys_platform.defs.personalize.handoffs import DatasetImport, DatasetSnapshot, ModelComparison
from recsys_platform.defs.personalize.holdout_scoring import HoldoutScore, load_holdout, score_on_holdout
from recsys_platform.defs.personalize.personalize_setup import PersonalizeSetup
from recsys_platform.defs.personalize.snapshots import GROUP, HANDOFF_IO_MANAGER, minimums_check, window_params
from recsys_platform.defs.personalize.solution_version import TRAINING_POOL, train_solution_version
from recsys_platform.defs.personalize.wait_config import PersonalizeWaitConfig
from recsys_platform.lib.lake import LakeResource
from recsys_platform.lib.personalize_clients import PersonalizeResource
from recsys_platform.lib.warehouse.interface import Warehouse

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
    from recsys_platform.shared.paired_comparison import paired_difference

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


def build_model_comparison(setup: PersonalizeSetup, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    @asset(
        group_name=GROUP,
        kinds={"personalize"},
        partitions_def=partitions,
        io_manager_key=HANDOFF_IO_MANAGER,
        pool=TRAINING_POOL,
    )
    def personalize_model_comparison(
        context: AssetExecutionContext,
        config: PersonalizeWaitConfig,
        personalize: PersonalizeResource,
        lake: LakeResource,
        warehouse: Warehouse,
        personalize_dataset_import: DatasetImport,
        personalize_interactions_csv: DatasetSnapshot,
        personalize_items_csv: DatasetSnapshot,
    ) -> MaterializeResult[ModelComparison]:
        """The v1-vs-v2 experiment on this day's imported data: a purchases-only (v1) and an all-events
        (v2) solution version trained on the same window, shown side by side as Personalize reports them
        (not comparable across training data) and as the platform scores them on the same held-out
        purchases (comparable, with intervals)."""
        for variant in ("v1", "v2"):
            if variant not in setup.comparison:
                raise ValueError(f"personalize.yaml: comparison.{variant} is missing")
        window = personalize_interactions_csv.window
        # Fail with the numbers now rather than with a failed training later (v1 sees purchases only).
        for variant, spec in setup.comparison.items():
            minimums = minimums_check(warehouse, window_params(window, setup), spec.event_type)
            if not minimums.passed:
                raise ValueError(
                    f"{variant} ({spec.event_type or 'all event types'}) cannot be trained: {minimums.description}")
        client = personalize.get_client()
        provision(client, setup, config.policy(), extra_solutions=tuple(setup.comparison.values()))
        day = compact_date(context.partition_key)
        versions = {}
        for variant, spec in setup.comparison.items():
            solution_arn = find_solution_arn(client, personalize_dataset_import.dataset_group_arn, spec.name)
            # The experiment compares FULL trainings; a version created before the datasets last changed
            # trained on another import and is not resumed.
            versions[variant] = train_solution_version(
                context, client, solution_arn, f"recsys-{variant}-{day}", "FULL", config.policy(),
                data_as_of=personalize_dataset_import.data_as_of,
            )

        holdout = load_holdout(warehouse, lake, window, setup, context.run.run_id)
        # Unfiltered, unlike the gate: the experiment compares what the models learned (the source article's
        # question), not what a shop's filters let through.
        scores = {
            variant: score_on_holdout(client, lake, version.solution_version_arn, holdout, f"recsys-compare-{day}",
                                      personalize.service_role_arn, setup.gate.num_results, personalize_items_csv.rows,
                                      config.policy(), log=context.log.info)
            for variant, version in versions.items()
        }
        reported = {variant: version.metrics for variant, version in versions.items()}
        table = (
            "### As Personalize reports them (GetSolutionMetrics; targets differ, not comparable)\n\n"
            + personalize_metrics_table(reported)
            + "\n\n### On the platform holdout (same targets, comparable)\n\n"
            + holdout_table(scores, setup.holdout.target_event_type)
        )
        comparison = ModelComparison(
            window=window.label, holdout_users=len(holdout.targets), table=table,
            solution_version_arns={variant: version.solution_version_arn for variant, version in versions.items()},
        )
        metadata = {"comparison": MetadataValue.md(table), "window": window.label,
                    "holdout_users": MetadataValue.int(len(holdout.targets))}
        for variant in ("v1", "v2"):
            metadata[f"{variant}_solution_version_arn"] = versions[variant].solution_version_arn
            for label, key in ARTICLE_METRICS[:4]:
                metadata[f"{variant}_personalize_{key}"] = MetadataValue.float(
                    float(reported[variant].get(key, float("nan"))))
                metadata[f"{variant}_holdout_{key}"] = MetadataValue.float(float(scores[variant].metrics[key]))
        return MaterializeResult(value=comparison, metadata=metadata)

    return personalize_model_comparison
