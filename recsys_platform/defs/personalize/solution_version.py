"""personalize_solution_version: trains the production solution on the day's imported data.

Start-or-resume: the version is named after the training date, so a retried step waits on the
training it started instead of paying for a second one.
"""

from typing import Literal

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from recsys_platform.defs.personalize.provisioning import find_solution_arn
from recsys_platform.defs.personalize.dataset_import import compact_date
from recsys_platform.defs.personalize.handoffs import DatasetImport, TrainedSolutionVersion
from recsys_platform.defs.personalize.job_waiting import WaitPolicy, attempt_name, list_all, wait_until_active
from recsys_platform.defs.personalize.personalize_setup import PersonalizeSetup, SolutionSpec
from recsys_platform.defs.personalize.snapshots import GROUP, HANDOFF_IO_MANAGER
from recsys_platform.defs.personalize.wait_config import PersonalizeWaitConfig
from recsys_platform.lib.personalize_clients import PersonalizeResource
from recsys_platform.shared.personalize_facts import RECIPES_WITH_UPDATE, allows_update_training, recipe_name

TRAINING_POOL = "personalize_training"


class SolutionVersionConfig(PersonalizeWaitConfig):
    training_mode: Literal["FULL", "UPDATE"] = Field(
        default="FULL", description=f"UPDATE refreshes the latest FULL version ({', '.join(RECIPES_WITH_UPDATE)} only)."
    )


def start_or_resume_solution_version(client, solution_arn: str, base_name: str, training_mode: str) -> tuple[str, str, bool]:
    """(solutionVersionArn, name, resumed) for the version named after `base_name`."""
    summaries = list_all(client, "list_solution_versions", "solutionVersions", solutionArn=solution_arn)
    # The list has no names: describe the versions to find this date's attempts.
    by_name = {}
    for summary in summaries:
        version = client.describe_solution_version(solutionVersionArn=summary["solutionVersionArn"])["solutionVersion"]
        if version.get("name", "").startswith(base_name):
            by_name[version["name"]] = version
    name, resumed = attempt_name(base_name, {n: v["status"] for n, v in by_name.items()})
    if resumed:
        return by_name[name]["solutionVersionArn"], name, True
    arn = client.create_solution_version(solutionArn=solution_arn, name=name, trainingMode=training_mode)
    return arn["solutionVersionArn"], name, False


def check_training_mode(client, solution_arn: str, spec: SolutionSpec, training_mode: str) -> None:
    if training_mode != "UPDATE":
        return
    if not allows_update_training(spec.recipe):
        raise ValueError(f"trainingMode UPDATE needs one of the recipes {RECIPES_WITH_UPDATE}; "
                         f"solution {spec.name} uses {recipe_name(spec.recipe)}")
    versions = list_all(client, "list_solution_versions", "solutionVersions", solutionArn=solution_arn)
    if not any(v["status"] == "ACTIVE" and v.get("trainingMode") == "FULL" for v in versions):
        raise ValueError(f"trainingMode UPDATE needs an ACTIVE FULL version of {spec.name}; train FULL first")


def train_solution_version(context: AssetExecutionContext, client, solution_arn: str, base_name: str,
                           training_mode: str, policy: WaitPolicy) -> TrainedSolutionVersion:
    """Starts (or resumes) and waits on a solution version.

    If the run is cancelled while training, the remote training is stopped so it is not paid for.
    """
    arn, name, resumed = start_or_resume_solution_version(client, solution_arn, base_name, training_mode)
    context.log.info(f"{'resuming' if resumed else 'started'} solution version {name}: {arn}")

    def stop_training() -> None:
        from botocore.exceptions import ClientError

        context.log.warning(f"run cancelled: stopping solution version {name}")
        try:
            client.stop_solution_version_creation(solutionVersionArn=arn)
        except ClientError as error:  # e.g. it finished meanwhile; the cancellation still goes on
            context.log.warning(f"could not stop solution version {name}: {error}")

    version = wait_until_active(
        lambda: client.describe_solution_version(solutionVersionArn=arn)["solutionVersion"],
        f"solution version {name}", policy, log=context.log.info, on_interrupt=stop_training,
    )
    metrics = client.get_solution_metrics(solutionVersionArn=arn).get("metrics", {})
    return TrainedSolutionVersion(
        solution_version_arn=arn, name=version.get("name", name), recipe_arn=version.get("recipeArn", ""),
        event_type=version.get("eventType") or None, training_mode=version.get("trainingMode", training_mode),
        resumed=resumed, metrics={key: float(value) for key, value in metrics.items()},
        training_hours=float(version["trainingHours"]) if version.get("trainingHours") is not None else None,
    )


def solution_version_metadata(version: TrainedSolutionVersion) -> dict:
    metadata = {
        "solution_version_arn": version.solution_version_arn,
        "name": version.name,
        "recipe": version.recipe_arn,
        "event_type": version.event_type or "(all event types)",
        "training_mode": version.training_mode,
        "resumed": version.resumed,
    }
    if version.training_hours is not None:
        metadata["training_hours"] = MetadataValue.float(version.training_hours)
    # Numeric metadata: the UI plots each metric across the daily versions.
    metadata.update({key: MetadataValue.float(value) for key, value in sorted(version.metrics.items())})
    return metadata


def build_solution_version(setup: PersonalizeSetup, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    @asset(
        group_name=GROUP,
        kinds={"personalize"},
        partitions_def=partitions,
        io_manager_key=HANDOFF_IO_MANAGER,
        pool=TRAINING_POOL,
    )
    def personalize_solution_version(
        context: AssetExecutionContext, config: SolutionVersionConfig, personalize: PersonalizeResource,
        personalize_dataset_import: DatasetImport,
    ) -> MaterializeResult[TrainedSolutionVersion]:
        """A solution version of the production solution trained on this day's imported data (named
        `recsys-<YYYYMMDD>`), waited on until ACTIVE, with Personalize's offline metrics
        (GetSolutionMetrics) as numeric metadata. One training at a time (pool `personalize_training`)."""
        client = personalize.get_client()
        solution_arn = find_solution_arn(client, personalize_dataset_import.dataset_group_arn, setup.solution.name)
        check_training_mode(client, solution_arn, setup.solution, config.training_mode)
        version = train_solution_version(
            context, client, solution_arn, f"recsys-{compact_date(context.partition_key)}", config.training_mode,
            config.policy(),
        )
        return MaterializeResult(value=version, metadata=solution_version_metadata(version))

    return personalize_solution_version
