"""personalize_campaign: moves the live campaign to the day's solution version, behind the gate.

Champion/challenger: before the campaign moves, the new version (challenger) and the version the
campaign serves (champion) answer the same platform holdout through batch inference, filtered by the
serving filter (personalize.yaml `campaign.filter`, so the gate scores what users get), and are scored
on the same targets (campaign_gate.py). The campaign moves only if the challenger is not worse than
the champion by more than the configured tolerance; an operator can force either outcome through run
config. A holdout too small to score (`gate.min_holdout_users`) is decided by `gate.when_unscorable`.

The campaign is created and updated with `campaignConfig.syncWithLatestSolutionVersion` false, so no
version reaches users without passing the gate; one found following its solution, or with another
minProvisionedTPS than personalize.yaml's, is refused by name with the fix.
"""

import datetime as dt
from typing import Literal

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from recsys_platform.defs.personalize.provisioning import find_campaign_arn, find_solution_arn
from recsys_platform.defs.personalize.campaign_gate import GateDecision, gate_decision, unscorable_decision
from recsys_platform.defs.personalize.dataset_import import compact_date
from recsys_platform.defs.personalize.handoffs import (
    CampaignState,
    DatasetImport,
    DatasetSnapshot,
    TrainedSolutionVersion,
)
from recsys_platform.defs.personalize.holdout_scoring import EmptyHoldoutError, load_holdout, score_on_holdout
from recsys_platform.defs.personalize.job_waiting import (
    PersonalizeJobDeadlineExceeded,
    PersonalizeJobFailed,
    wait_until_active,
)
from recsys_platform.defs.personalize.personalize_setup import PersonalizeSetup
from recsys_platform.defs.personalize.snapshots import GROUP, HANDOFF_IO_MANAGER
from recsys_platform.defs.personalize.wait_config import PersonalizeWaitConfig
from recsys_platform.lib.lake import LakeResource
from recsys_platform.lib.personalize_clients import PersonalizeResource
from recsys_platform.lib.warehouse.interface import Warehouse
from recsys_platform.shared.personalize_facts import ACTIVE, LATEST_SOLUTION_VERSION_SUFFIX, is_failed


def campaign_decided_by_1800(timezone: str) -> FreshnessPolicy:
    """The retraining schedule starts at 11:00 property time; training on AWS takes hours. By 18:00 the
    campaign has been decided on (moved or deliberately kept) for the day."""
    return FreshnessPolicy.cron(deadline_cron="0 18 * * *", lower_bound_delta=dt.timedelta(hours=24), timezone=timezone)


class CampaignConfig(PersonalizeWaitConfig):
    override: Literal["none", "promote", "hold"] = Field(
        default="none", description="Operator override of the gate: 'promote' or 'hold' whatever the scores say."
    )
    tolerance: float | None = Field(
        default=None, description="Largest drop of the gate metric allowed (default: personalize.yaml gate.tolerance)."
    )


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


# Sent with every CreateCampaign / UpdateCampaign: the campaign never moves by itself.
CAMPAIGN_CONFIG = {"syncWithLatestSolutionVersion": False}


class CampaignDrift(ValueError):
    """The campaign in Personalize is not configured as personalize.yaml says; the message gives the fix."""


def refuse_drifted_campaign(campaign: dict, name: str, min_provisioned_tps: int) -> None:
    """A campaign that follows its solution would serve versions the gate never passed; another
    minProvisionedTPS bills what nobody configured. Both are refused, naming the campaign and the fix."""
    differences = []
    if (campaign.get("campaignConfig") or {}).get("syncWithLatestSolutionVersion"):
        differences.append("campaignConfig.syncWithLatestSolutionVersion: true in Personalize, false in "
                           "personalize.yaml (it would serve every new version, gated or not)")
    if campaign.get("minProvisionedTPS") != min_provisioned_tps:
        differences.append(f"minProvisionedTPS: {campaign.get('minProvisionedTPS')} in Personalize, "
                           f"{min_provisioned_tps} in personalize.yaml")
    if differences:
        serving = campaign.get("solutionVersionArn") or ""
        if not serving or serving.endswith(LATEST_SOLUTION_VERSION_SUFFIX):
            serving = "<the solution version it should serve>"
        raise CampaignDrift(
            f"campaign {name} ({campaign.get('campaignArn')}) differs from personalize.yaml: {'; '.join(differences)}. "
            f"Fix: aws personalize update-campaign --campaign-arn {campaign.get('campaignArn')} --solution-version-arn "
            f"{serving} --min-provisioned-tps {min_provisioned_tps} --campaign-config "
            "syncWithLatestSolutionVersion=false (or change campaign.min_provisioned_tps in personalize.yaml), "
            "then run the step again"
        )


def serving_since(campaign: dict) -> dt.datetime:
    update = campaign.get("latestCampaignUpdate") or {}
    if update.get("status") == ACTIVE and update.get("solutionVersionArn") == campaign["solutionVersionArn"]:
        return update["lastUpdatedDateTime"]
    return campaign["creationDateTime"]


def build_campaign(setup: PersonalizeSetup, partitions: DailyPartitionsDefinition, timezone: str) -> AssetsDefinition:
    @asset(
        group_name=GROUP,
        kinds={"personalize"},
        partitions_def=partitions,
        io_manager_key=HANDOFF_IO_MANAGER,
        freshness_policy=campaign_decided_by_1800(timezone),
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
        personalize_solution_version: TrainedSolutionVersion,
        personalize_interactions_csv: DatasetSnapshot,
        personalize_items_csv: DatasetSnapshot,
        personalize_dataset_import: DatasetImport,
    ):
        """The live Personalize campaign that serves recommendations. Created with the first solution
        version; afterwards moved to the day's version only if it passes the champion/challenger gate on
        the platform holdout, scored through the serving filter; never following its solution by itself.
        Metadata: the version served and since when, the decision and both scores, and what the shop's app
        needs: the filters' ARNs and the event tracker's trackingId."""
        gate = setup.gate
        filter_arns = personalize_dataset_import.filter_arns
        serving_filter_arn = filter_arns.get(setup.serving_filter) if setup.serving_filter else None
        if setup.serving_filter and serving_filter_arn is None:
            raise LookupError(f"filter {setup.serving_filter} (campaign.filter) was not provisioned by the day's "
                              "import; re-run personalize_dataset_import")
        tolerance = gate.tolerance if config.tolerance is None else config.tolerance
        client = personalize.get_client()
        solution_arn = client.describe_solution_version(
            solutionVersionArn=personalize_solution_version.solution_version_arn)["solutionVersion"]["solutionArn"]
        challenger_arn = personalize_solution_version.solution_version_arn
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
                          "gate_tolerance": MetadataValue.float(tolerance),
                          "gate_filter_arn": serving_filter_arn or "(none)"}
        check = None
        scored = True
        if campaign_arn is None:
            campaign_arn = client.create_campaign(
                name=setup.campaign_name, solutionVersionArn=challenger_arn,
                minProvisionedTPS=setup.min_provisioned_tps, campaignConfig=CAMPAIGN_CONFIG,
            )["campaignArn"]
            decision = GateDecision(True, "first deployment: no campaign served a version before")
            campaign = wait_for_campaign()
        else:
            campaign = wait_for_campaign(earlier_update_failure_ok=True)  # an earlier run's update settles first
            refuse_drifted_campaign(campaign, setup.campaign_name, setup.min_provisioned_tps)
            champion_arn = campaign["solutionVersionArn"]
            if champion_arn == challenger_arn:
                decision = GateDecision(True, "the campaign already serves this version")
            else:
                window = personalize_interactions_csv.window
                holdout, unscored = None, None
                try:
                    holdout = load_holdout(warehouse, lake, window, setup, context.run.run_id)
                except EmptyHoldoutError as error:
                    unscored = str(error)
                if holdout is not None and len(holdout.targets) < gate.min_holdout_users:
                    unscored = (f"{len(holdout.targets)} held-out user(s) with a {setup.holdout.target_event_type} "
                                f"since {window.holdout_start}, fewer than gate.min_holdout_users "
                                f"({gate.min_holdout_users})")
                if unscored is not None:
                    scored = False
                    decision, check, gate_metadata = unscorable_decision(unscored, gate, config.override)
                else:
                    try:
                        job_prefix = f"recsys-holdout-{compact_date(context.partition_key)}"
                        scores = {
                            role: score_on_holdout(client, lake, arn, holdout, job_prefix,
                                                   personalize.service_role_arn, gate.num_results,
                                                   personalize_items_csv.rows, config.policy(), log=context.log.info,
                                                   filter_arn=serving_filter_arn)
                            for role, arn in (("challenger", challenger_arn), ("champion", champion_arn))
                        }
                    except (PersonalizeJobFailed, PersonalizeJobDeadlineExceeded) as error:
                        if config.override == "none":
                            raise
                        # The override is how an operator gets past a gate whose batch inference failed.
                        context.log.warning(f"the gate could not score the versions ({error}); the override decides")
                        scores = None
                        scored = False
                    decision, check, gate_metadata = gate_decision(scores, gate, tolerance, config.override)
                metadata.update(gate_metadata)
                if decision.promote:
                    client.update_campaign(campaignArn=campaign_arn, solutionVersionArn=challenger_arn,
                                           minProvisionedTPS=setup.min_provisioned_tps,
                                           campaignConfig=CAMPAIGN_CONFIG)
                    campaign = wait_for_campaign()
        context.log.info(f"gate: {decision.reason}")
        state = CampaignState(campaign_arn=campaign_arn, serving_solution_version_arn=campaign["solutionVersionArn"],
                              serving_since=serving_since(campaign), promoted=decision.promote,
                              decision=decision.reason, serving_filter_arn=serving_filter_arn,
                              filter_arns=filter_arns, event_tracker_arn=personalize_dataset_import.event_tracker_arn,
                              tracking_id=personalize_dataset_import.tracking_id, scored=scored)
        metadata.update({
            "campaign_arn": state.campaign_arn,
            "decision": state.decision,
            "promoted": state.promoted,
            "scored": state.scored,
            "serving_solution_version_arn": state.serving_solution_version_arn,
            "serving_since": state.serving_since.isoformat(),
            "campaign_config": MetadataValue.json(campaign.get("campaignConfig") or {}),
            "min_provisioned_tps": MetadataValue.int(int(campaign.get("minProvisionedTPS") or 0)),
            "serving_filter_arn": state.serving_filter_arn or "(none)",
            "filter_arns": MetadataValue.json(state.filter_arns),
            "event_tracker_arn": state.event_tracker_arn or "(none)",
            "tracking_id": state.tracking_id or "(none)",
        })
        if check is None:
            check = AssetCheckResult(check_name="challenger_not_worse", passed=True,
                                     metadata={"decision": decision.reason})
        return MaterializeResult(value=state, metadata=metadata, check_results=[check])

    return personalize_campaign
