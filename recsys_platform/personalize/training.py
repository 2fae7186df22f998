"""Chain assets that load the snapshots into Personalize and train a solution version on them.

Both are start-or-resume: job names derive from the training date, so a retried or re-executed step
finds the job it started before and waits on it instead of paying for a second one.
"""

import datetime as dt
from typing import Literal

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from recsys_platform.partitions import daily_partitions
from recsys_platform.personalize.bootstrap import bootstrap, find_solution_arn
from recsys_platform.personalize.config import DATASET_KEYS, SolutionSpec, load_setup
from recsys_platform.personalize.waiting import WaitPolicy, attempt_name, list_all, wait_until_active
from recsys_platform.resources.personalize import PersonalizeResource

GROUP = "personalize"
TRAINING_POOL = "personalize_training"
# Recipes whose solutions accept trainingMode=UPDATE (after one FULL version exists).
UPDATE_RECIPES = ("aws-user-personalization", "aws-hrnn-coldstart")


class PersonalizeWaitConfig(Config):
    poll_seconds: float = Field(
        default=60.0, description="Longest interval between status checks (checks start at 1s and double)."
    )
    deadline_seconds: float = Field(default=6 * 3600.0, description="The step fails if the job is not done by then.")

    def policy(self) -> WaitPolicy:
        return WaitPolicy(poll_seconds=self.poll_seconds, deadline_seconds=self.deadline_seconds,
                          first_poll_seconds=min(1.0, self.poll_seconds))


class DatasetImportConfig(PersonalizeWaitConfig):
    import_mode: Literal["FULL", "INCREMENTAL"] = Field(
        default="FULL",
        description="FULL replaces each dataset's data with the snapshots; INCREMENTAL appends the snapshots to what "
                    "the datasets hold (overlapping windows import rows twice, and rows imported before they fell in "
                    "the holdout period stay in training).",
    )


class SolutionVersionConfig(PersonalizeWaitConfig):
    training_mode: Literal["FULL", "UPDATE"] = Field(
        default="FULL", description="UPDATE refreshes the latest FULL version (User-Personalization recipes only)."
    )


def compact_date(partition_key: str) -> str:
    return dt.date.fromisoformat(partition_key).strftime("%Y%m%d")


def latest_metadata(context: AssetExecutionContext, asset_name: str) -> dict:
    """Metadata of the newest materialization of `asset_name` for this run's partition."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset_name), asset_partitions=[context.partition_key]), limit=1
    ).records
    if not records:
        raise LookupError(f"{asset_name} has no materialization for {context.partition_key}; materialize it first")
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def start_or_resume_import(client, dataset_arn: str, base_name: str, data_location: str, import_mode: str,
                           role_arn: str | None) -> tuple[str, str, bool]:
    """(datasetImportJobArn, jobName, resumed) for the import named after `base_name`."""
    jobs = list_all(client, "list_dataset_import_jobs", "datasetImportJobs", datasetArn=dataset_arn)
    name, resumed = attempt_name(base_name, {j["jobName"]: j["status"] for j in jobs})
    if resumed:
        arn = next(j["datasetImportJobArn"] for j in jobs if j["jobName"] == name)
        return arn, name, True
    params = {
        "jobName": name,
        "datasetArn": dataset_arn,
        "dataSource": {"dataLocation": data_location},
        "importMode": import_mode,
    }
    if role_arn:
        params["roleArn"] = role_arn
    return client.create_dataset_import_job(**params)["datasetImportJobArn"], name, False


@asset(
    group_name=GROUP,
    kinds={"personalize"},
    partitions_def=daily_partitions,
    deps=["personalize_interactions_csv", "personalize_items_csv", "personalize_users_csv"],
)
def personalize_dataset_import(
    context: AssetExecutionContext, config: DatasetImportConfig, personalize: PersonalizeResource
) -> MaterializeResult:
    """Dataset import jobs that load this day's three snapshots into the Personalize datasets, waited
    on until ACTIVE. Job names are `recsys-<dataset>-<YYYYMMDD>`; a re-run resumes the day's jobs."""
    setup = load_setup()
    client = personalize.get_client()
    arns = bootstrap(client, setup, config.policy(), log=context.log.info)
    day = compact_date(context.partition_key)
    started = {}
    for key in DATASET_KEYS:
        location = latest_metadata(context, f"personalize_{key}_csv")["uri"]
        started[key] = (
            *start_or_resume_import(client, arns.dataset_arns[key], f"recsys-{key}-{day}", location,
                                    config.import_mode, personalize.service_role_arn),
            location,
        )
    metadata = {"dataset_group_arn": arns.dataset_group_arn, "import_mode": config.import_mode}
    for key, (job_arn, name, resumed, location) in started.items():
        context.log.info(f"{'resuming' if resumed else 'started'} import {name} of {location}")
        job = wait_until_active(
            lambda arn=job_arn: client.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"],
            f"dataset import job {name}", config.policy(), log=context.log.info,
        )
        imported_location = job["dataSource"]["dataLocation"]
        if imported_location != location:
            # A re-executed day keeps the import it already paid for; say so rather than imply a fresh one.
            context.log.warning(f"import {name} loaded {imported_location}, not this run's snapshot {location}")
        metadata[f"{key}_job_arn"] = job_arn
        metadata[f"{key}_data_location"] = imported_location
        metadata[f"{key}_resumed"] = resumed
    return MaterializeResult(metadata=metadata)


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
    recipe = spec.recipe.rsplit("/", 1)[-1]
    if recipe not in UPDATE_RECIPES:
        raise ValueError(f"trainingMode UPDATE needs one of the recipes {UPDATE_RECIPES}; solution {spec.name} uses {recipe}")
    versions = list_all(client, "list_solution_versions", "solutionVersions", solutionArn=solution_arn)
    if not any(v["status"] == "ACTIVE" and v.get("trainingMode") == "FULL" for v in versions):
        raise ValueError(f"trainingMode UPDATE needs an ACTIVE FULL version of {spec.name}; train FULL first")


def train_solution_version(context: AssetExecutionContext, client, solution_arn: str, base_name: str,
                           training_mode: str, policy: WaitPolicy) -> tuple[dict, dict, bool]:
    """Starts (or resumes) and waits on a solution version; returns (description, metrics, resumed).

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
    return version, metrics, resumed


def solution_version_metadata(version: dict, metrics: dict, resumed: bool) -> dict:
    metadata = {
        "solution_version_arn": version["solutionVersionArn"],
        "name": version.get("name", ""),
        "recipe": version.get("recipeArn", ""),
        "event_type": version.get("eventType") or "(all event types)",
        "training_mode": version.get("trainingMode", ""),
        "resumed": resumed,
    }
    if version.get("trainingHours") is not None:
        metadata["training_hours"] = MetadataValue.float(float(version["trainingHours"]))
    # Numeric metadata: the UI plots each metric across the daily versions.
    metadata.update({key: MetadataValue.float(float(value)) for key, value in sorted(metrics.items())})
    return metadata


@asset(
    group_name=GROUP,
    kinds={"personalize"},
    partitions_def=daily_partitions,
    deps=[personalize_dataset_import],
    pool=TRAINING_POOL,
)
def personalize_solution_version(
    context: AssetExecutionContext, config: SolutionVersionConfig, personalize: PersonalizeResource
) -> MaterializeResult:
    """A solution version of the production solution trained on this day's imported data (named
    `recsys-<YYYYMMDD>`), waited on until ACTIVE, with Personalize's offline metrics
    (GetSolutionMetrics) as numeric metadata. One training at a time (pool `personalize_training`)."""
    setup = load_setup()
    client = personalize.get_client()
    arns = bootstrap(client, setup, config.policy())
    solution_arn = find_solution_arn(client, arns.dataset_group_arn, setup.solution.name)
    check_training_mode(client, solution_arn, setup.solution, config.training_mode)
    version, metrics, resumed = train_solution_version(
        context, client, solution_arn, f"recsys-{compact_date(context.partition_key)}", config.training_mode,
        config.policy(),
    )
    return MaterializeResult(metadata=solution_version_metadata(version, metrics, resumed))
