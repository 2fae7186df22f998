"""The campaign asset: moves the live campaign to the day's solution version, behind a metric gate.

Champion/challenger: before the campaign moves, the new version (challenger) and the version the
campaign serves (champion) answer the same platform holdout through batch inference and are scored
on the same targets. The campaign moves only if the challenger is not worse than the champion by
more than the configured tolerance; an operator can force either outcome through run config.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from recsys_platform.evaluation.compare import paired_difference
from recsys_platform.partitions import daily_partitions
from recsys_platform.personalize.bootstrap import bootstrap, find_campaign_arn, find_solution_arn
from recsys_platform.personalize.config import GateSpec, load_setup
from recsys_platform.personalize.holdout_scoring import EmptyHoldoutError, HoldoutScore, load_holdout, score_on_holdout
from recsys_platform.personalize.waiting import (
    ACTIVE,
    PersonalizeJobDeadlineExceeded,
    PersonalizeJobFailed,
    is_failed,
    wait_until_active,
)
from recsys_platform.personalize.snapshots import DEFAULT_WINDOW_DAYS, training_window
from recsys_platform.personalize.training import (
    GROUP,
    PersonalizeWaitConfig,
    compact_date,
    latest_metadata,
    personalize_solution_version,
)
from recsys_platform.resources.lake import LakeResource
from recsys_platform.resources.personalize import PersonalizeResource
from recsys_platform.resources.warehouse import Warehouse
from recsys_platform.settings import ga4_timezone

# The retraining schedule starts at 11:00 property time; training on AWS takes hours. By 18:00 the
# campaign has been decided on (moved or deliberately kept) for the day.
CAMPAIGN_DECIDED_BY_1800 = FreshnessPolicy.cron(
    deadline_cron="0 18 * * *", lower_bound_delta=dt.timedelta(hours=24), timezone=ga4_timezone()
)


class CampaignConfig(PersonalizeWaitConfig):
    override: Literal["none", "promote", "hold"] = Field(
        default="none", description="Operator override of the gate: 'promote' or 'hold' whatever the scores say."
    )
    tolerance: float | None = Field(
        default=None, description="Largest drop of the gate metric allowed (default: personalize.yaml gate.tolerance)."
    )


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def decide(challenger: float, champion: float, tolerance: float, override: str = "none",
           difference_upper: float | None = None) -> GateDecision:
    """Promote unless the challenger is worse than the champion by more than `tolerance`.

    With `difference_upper` (upper end of the paired 95% interval of challenger - champion), the
    challenger is held only when it is worse beyond the tolerance with confidence: on a small holdout a
    drop within noise does not keep a stale model live. Without it, the means decide.
    """
    if tolerance < 0:
        raise ValueError(f"gate tolerance must be >= 0, got {tolerance}")
    if override == "promote":
        return GateDecision(True, "operator override: promote")
    if override == "hold":
        return GateDecision(False, "operator override: hold")
    if override != "none":
        raise ValueError(f"override must be 'none', 'promote' or 'hold', got {override!r}")
    if challenger != challenger:  # NaN: no held-out user could be scored
        return GateDecision(False, "hold: the challenger could not be scored on the holdout")
    scores = f"challenger {challenger:.4f}, champion {champion:.4f}, tolerance {tolerance}"
    if difference_upper is not None and difference_upper == difference_upper:
        if difference_upper < -tolerance:
            return GateDecision(False, f"hold: challenger worse with 95% confidence ({scores}, "
                                       f"difference upper bound {difference_upper:+.4f})")
        return GateDecision(True, f"promote: not worse beyond the tolerance with 95% confidence ({scores}, "
                                  f"difference upper bound {difference_upper:+.4f})")
    if challenger >= champion - tolerance:
        return GateDecision(True, f"promote: challenger >= champion - tolerance ({scores})")
    return GateDecision(False, f"hold: challenger < champion - tolerance ({scores})")


def campaign_progress(campaign: dict, earlier_update_failure_ok: bool = False) -> dict:
    """The campaign's state for waiting: an update in flight (`latestCampaignUpdate`) counts as its status.

    With `earlier_update_failure_ok`, a failed update of an earlier run counts as settled: the campaign
    still serves its previous version, and the gate may try again instead of failing every day after.
    """
    update = campaign.get("latestCampaignUpdate") or {}
    if update and update.get("status") != ACTIVE:
        if earlier_update_failure_ok and is_failed(update.get("status", "")):
            return {**campaign, "status": ACTIVE}
        return {**campaign, "status": update.get("status", ""), "failureReason": update.get("failureReason")}
    return campaign


def serving_since(campaign: dict) -> dt.datetime:
    update = campaign.get("latestCampaignUpdate") or {}
    if update.get("status") == ACTIVE and update.get("solutionVersionArn") == campaign["solutionVersionArn"]:
        return update["lastUpdatedDateTime"]
    return campaign["creationDateTime"]


def _score_metadata(prefix: str, score: HoldoutScore, metric: str) -> dict:
    low, high = score.interval(metric)
    return {
        f"{prefix}_solution_version_arn": score.solution_version_arn,
        f"{prefix}_{metric}": MetadataValue.float(float(score.metrics[metric])),
        f"{prefix}_{metric}_interval_95": f"[{low:.4f}, {high:.4f}]",
        f"{prefix}_users_scored": MetadataValue.int(len(score.per_user)),
    }


def _gate_table(scores: dict[str, HoldoutScore], metric_keys: list[str]) -> str:
    rows = ["| metric | " + " | ".join(scores) + " |", "|---|" + "---|" * len(scores)]
    for key in metric_keys:
        rows.append(f"| {key} | " + " | ".join(f"{s.metrics[key]:.4f}" for s in scores.values()) + " |")
    return "\n".join(rows)


def gate_decision(scores: dict[str, HoldoutScore] | None, gate: GateSpec, tolerance: float,
                  override: str) -> tuple[GateDecision, AssetCheckResult, dict]:
    """The gate's decision on the challenger's and champion's holdout scores (None: they could not be
    scored, so only an operator override decides), its check result, and the metadata that shows why."""
    if scores is None:
        decision = decide(float("nan"), float("nan"), tolerance, override)
        check = AssetCheckResult(
            check_name="challenger_not_worse", passed=False, severity=AssetCheckSeverity.WARN,
            metadata={"decision": decision.reason, "gate_without_override": "the versions could not be scored"},
        )
        return decision, check, {}
    challenger, champion = scores["challenger"].metrics[gate.metric], scores["champion"].metrics[gate.metric]
    paired = paired_difference(scores["challenger"].per_user, scores["champion"].per_user, gate.metric)
    difference_upper = paired.high if gate.require_confidence else None
    decision = decide(challenger, champion, tolerance, override, difference_upper)
    gate_verdict = decide(challenger, champion, tolerance, "none", difference_upper)
    metadata = {
        **_score_metadata("challenger", scores["challenger"], gate.metric),
        **_score_metadata("champion", scores["champion"], gate.metric),
        "difference_interval_95": f"{paired.difference:+.4f} [{paired.low:+.4f}, {paired.high:+.4f}]",
        "difference_verdict": paired.verdict().replace("A better", "challenger better").replace(
            "B better", "champion better"),
        "holdout_scores": MetadataValue.md(_gate_table(scores, list(scores["challenger"].metrics))),
    }
    check = AssetCheckResult(
        check_name="challenger_not_worse", passed=gate_verdict.promote, severity=AssetCheckSeverity.WARN,
        metadata={"decision": decision.reason, "gate_without_override": gate_verdict.reason},
    )
    return decision, check, metadata


@asset(
    group_name=GROUP,
    kinds={"personalize"},
    partitions_def=daily_partitions,
    freshness_policy=CAMPAIGN_DECIDED_BY_1800,
    deps=[personalize_solution_version, "personalize_items_csv", "personalize_interactions_csv"],
    check_specs=[AssetCheckSpec(
        "challenger_not_worse", asset="personalize_campaign",
        description="The day's solution version scored no worse than the serving one (beyond the tolerance) "
                    "on the platform holdout; a failure means the campaign kept the champion.",
    )],
)
def personalize_campaign(
    context: AssetExecutionContext,
    config: CampaignConfig,
    personalize: PersonalizeResource,
    lake: LakeResource,
    warehouse: Warehouse,
) -> MaterializeResult:
    """The live Personalize campaign that serves recommendations. Created with the first solution
    version; afterwards moved to the day's version only if it passes the champion/challenger gate on
    the platform holdout. Metadata: the version served and since when, the decision and both scores."""
    setup = load_setup()
    gate: GateSpec = setup.gate
    tolerance = gate.tolerance if config.tolerance is None else config.tolerance
    client = personalize.get_client()
    arns = bootstrap(client, setup, config.policy())
    solution_arn = find_solution_arn(client, arns.dataset_group_arn, setup.solution.name)
    challenger_arn = latest_metadata(context, "personalize_solution_version")["solution_version_arn"]
    campaign_arn = find_campaign_arn(client, solution_arn, setup.campaign_name)

    def describe() -> dict:
        return client.describe_campaign(campaignArn=campaign_arn)["campaign"]

    def wait_for_campaign(earlier_update_failure_ok: bool = False) -> dict:
        settled = wait_until_active(lambda: campaign_progress(describe(), earlier_update_failure_ok),
                                    f"campaign {setup.campaign_name}", config.policy(), log=context.log.info)
        update = settled.get("latestCampaignUpdate") or {}
        if earlier_update_failure_ok and is_failed(update.get("status", "")):
            context.log.warning(f"an earlier update of campaign {setup.campaign_name} to "
                                f"{update.get('solutionVersionArn')} failed: {update.get('failureReason')}")
        return describe()

    metadata: dict = {"challenger_solution_version_arn": challenger_arn, "gate_metric": gate.metric,
                      "gate_tolerance": MetadataValue.float(tolerance)}
    check = None
    if campaign_arn is None:
        campaign_arn = client.create_campaign(
            name=setup.campaign_name, solutionVersionArn=challenger_arn, minProvisionedTPS=setup.min_provisioned_tps
        )["campaignArn"]
        decision = GateDecision(True, "first deployment: no campaign served a version before")
        campaign = wait_for_campaign()
    else:
        campaign = wait_for_campaign(earlier_update_failure_ok=True)  # an earlier run's update settles first
        champion_arn = campaign["solutionVersionArn"]
        if champion_arn == challenger_arn:
            decision = GateDecision(True, "the campaign already serves this version")
        else:
            window_days = int(latest_metadata(context, "personalize_interactions_csv").get("window_days", DEFAULT_WINDOW_DAYS))
            window = training_window(context.partition_key, window_days, setup)
            try:
                holdout = load_holdout(warehouse, lake, window, setup, context.run.run_id)
                catalog_size = int(latest_metadata(context, "personalize_items_csv")["rows"])
                job_prefix = f"recsys-holdout-{compact_date(context.partition_key)}"
                scores = {
                    role: score_on_holdout(client, lake, arn, holdout, job_prefix, personalize.service_role_arn,
                                           gate.num_results, catalog_size, config.policy(), log=context.log.info)
                    for role, arn in (("challenger", challenger_arn), ("champion", champion_arn))
                }
            except (EmptyHoldoutError, PersonalizeJobFailed, PersonalizeJobDeadlineExceeded) as error:
                if config.override == "none":
                    raise
                # The override is how an operator gets past a gate that cannot score (e.g. no purchases yet).
                context.log.warning(f"the gate could not score the versions ({error}); the override decides")
                scores = None
            decision, check, gate_metadata = gate_decision(scores, gate, tolerance, config.override)
            metadata.update(gate_metadata)
            if decision.promote:
                client.update_campaign(campaignArn=campaign_arn, solutionVersionArn=challenger_arn)
                campaign = wait_for_campaign()
    context.log.info(f"gate: {decision.reason}")
    metadata.update({
        "campaign_arn": campaign_arn,
        "decision": decision.reason,
        "promoted": decision.promote,
        "serving_solution_version_arn": campaign["solutionVersionArn"],
        "serving_since": serving_since(campaign).isoformat(),
    })
    if check is None:
        check = AssetCheckResult(check_name="challenger_not_worse", passed=True, metadata={"decision": decision.reason})
    return MaterializeResult(metadata=metadata, check_results=[check])
