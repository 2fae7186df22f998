"""personalize_solution_version: trains the production solution on the day's imported data.

FULL or UPDATE by the training cadence of personalize.yaml (`training.full_every_days`,
`full_on_weekdays`): UPDATE between FULL trainings where the recipe allows it
(`personalize_facts.allows_update_training`), FULL otherwise; the choice and its reason are metadata.

Start-or-resume: the version is named after the training date, so a retried step waits on the training
it started instead of paying for a second one, unless that version was created before the datasets last
changed (a re-run after a fresh import): it trained on the old import, so the day gets a new version
(the next attempt name).
"""

import datetime as dt
from dataclasses import dataclass
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

from recsys_platform.defs.personalize.dataset_import import compact_date
from recsys_platform.defs.personalize.handoffs import DatasetImport, TrainedSolutionVersion
from recsys_platform.defs.personalize.job_waiting import (
    WaitPolicy,
    attempt_number,
    list_all,
    new_attempt_name,
    wait_until_active,
)
from recsys_platform.defs.personalize.personalize_setup import Cadence, PersonalizeSetup, SolutionSpec
from recsys_platform.defs.personalize.provisioning import find_solution_arn
from recsys_platform.defs.personalize.snapshots import GROUP, HANDOFF_IO_MANAGER
from recsys_platform.defs.personalize.wait_config import PersonalizeWaitConfig
from recsys_platform.lib.personalize_clients import PersonalizeResource
from recsys_platform.shared.personalize_facts import (
    ACTIVE,
    RECIPES_WITH_UPDATE,
    allows_update_training,
    is_failed,
    recipe_name,
)

TRAINING_POOL = "personalize_training"
_VERSION_DAY_FORMAT = "%Y%m%d"


class SolutionVersionConfig(PersonalizeWaitConfig):
    training_mode: Literal["policy", "FULL", "UPDATE"] = Field(
        default="policy",
        description="policy: FULL or UPDATE as personalize.yaml `training` decides (metadata says why); FULL or "
                    f"UPDATE force it (UPDATE: {', '.join(RECIPES_WITH_UPDATE)} only, after a FULL version).",
    )


@dataclass(frozen=True)
class PastVersion:
    arn: str
    name: str
    status: str
    training_mode: str
    created_at: dt.datetime
    training_date: dt.date | None  # from the platform's name `<prefix>-YYYYMMDD[-aN]`


def solution_versions(client, solution_arn: str, prefix: str = "recsys") -> list[PastVersion]:
    """Every version of the solution, described (ListSolutionVersions has no names)."""
    versions = []
    for summary in list_all(client, "list_solution_versions", "solutionVersions", solutionArn=solution_arn):
        version = client.describe_solution_version(solutionVersionArn=summary["solutionVersionArn"])["solutionVersion"]
        name = version.get("name", "")
        day = None
        stem = name[len(prefix) + 1:].split("-a")[0] if name.startswith(prefix + "-") else ""
        try:
            day = dt.datetime.strptime(stem, _VERSION_DAY_FORMAT).date()
        except ValueError:
            pass
        versions.append(PastVersion(version["solutionVersionArn"], name, version["status"],
                                    version.get("trainingMode") or "FULL", version["creationDateTime"], day))
    return versions


def decide_training_mode(spec: SolutionSpec, versions: list[PastVersion], training_date: dt.date, cadence: Cadence,
                         override: str = "policy") -> tuple[str, str]:
    """(trainingMode, why) for a new version of the solution on `training_date`."""
    if override == "FULL":
        return "FULL", "run config training_mode: FULL"
    fulls = sorted((v for v in versions if v.status == ACTIVE and v.training_mode == "FULL"),
                   key=lambda v: v.training_date or v.created_at.date())
    if override == "UPDATE":
        check_training_mode(spec, fulls, "UPDATE")
        return "UPDATE", "run config training_mode: UPDATE"
    if not allows_update_training(spec.recipe):
        return "FULL", f"{recipe_name(spec.recipe)} trains FULL only (UPDATE: {', '.join(RECIPES_WITH_UPDATE)})"
    if not fulls:
        return "FULL", f"no ACTIVE FULL version of {spec.name} yet (UPDATE refreshes one)"
    last_full = fulls[-1].training_date or fulls[-1].created_at.date()
    due = cadence.full_due(training_date, last_full)
    if due:
        return "FULL", f"FULL training due: {due.replace('FULL one', 'FULL version')}"
    return "UPDATE", (f"UPDATE between FULL trainings: the last FULL version {fulls[-1].name} is "
                      f"{(training_date - last_full).days} day(s) old (training.full_every_days: "
                      f"{cadence.full_every_days})")


def check_training_mode(spec: SolutionSpec, active_fulls: list, training_mode: str) -> None:
    if training_mode != "UPDATE":
        return
    if not allows_update_training(spec.recipe):
        raise ValueError(f"trainingMode UPDATE needs one of the recipes {RECIPES_WITH_UPDATE}; "
                         f"solution {spec.name} uses {recipe_name(spec.recipe)}")
    if not active_fulls:
        raise ValueError(f"trainingMode UPDATE needs an ACTIVE FULL version of {spec.name}; train FULL first")


def start_or_resume_solution_version(client, solution_arn: str, base_name: str, training_mode: str,
                                     versions: list[PastVersion], data_as_of: dt.datetime | None = None,
                                     stop=None) -> tuple[str, str, bool, str]:
    """(solutionVersionArn, name, resumed, why) for the version named after `base_name`.

    The day's newest attempt that has not failed is resumed, unless it was created before `data_as_of`
    (the datasets changed since it started: it trains on old data); then `stop(arn)` is called for one
    still training, and a new attempt starts."""
    attempts = sorted((v for v in versions if attempt_number(base_name, v.name) is not None),
                      key=lambda v: attempt_number(base_name, v.name))
    usable = [v for v in attempts if not is_failed(v.status)]
    why = ""
    if usable:
        latest = usable[-1]
        if data_as_of is None or latest.created_at >= data_as_of:
            return latest.arn, latest.name, True, f"resumed {latest.name}: created after the datasets last changed"
        why = (f"{latest.name} was created at {latest.created_at.isoformat()}, before the datasets last changed "
               f"({data_as_of.isoformat()}): it trained on the earlier import, so a new version trains on this one")
        if latest.status != ACTIVE and stop is not None:
            stop(latest.arn)
    name = new_attempt_name(base_name, [v.name for v in versions])
    try:
        arn = client.create_solution_version(solutionArn=solution_arn, name=name, trainingMode=training_mode)
    except (client.exceptions.ResourceInUseException, client.exceptions.ResourceAlreadyExistsException):
        # botocore retries a create whose answer was lost (a 5xx after Personalize accepted it); the retry
        # is refused because the version this call started is already training: that one is resumed.
        started = [v for v in solution_versions(client, solution_arn, base_name.rsplit("-", 1)[0]) if v.name == name]
        if not started:
            raise
        return started[0].arn, name, True, f"resumed {name}: its create was answered by a retry's refusal"
    return arn["solutionVersionArn"], name, False, why


def train_solution_version(context: AssetExecutionContext, client, solution_arn: str, base_name: str,
                           training_mode: str, policy: WaitPolicy, data_as_of: dt.datetime | None = None,
                           versions: list[PastVersion] | None = None, reason: str = "") -> TrainedSolutionVersion:
    """Starts (or resumes) and waits on a solution version.

    If the run is cancelled while training, the remote training is stopped so it is not paid for.
    """
    from botocore.exceptions import ClientError

    def stop(arn: str) -> None:
        try:
            client.stop_solution_version_creation(solutionVersionArn=arn)
        except ClientError as error:  # e.g. it finished meanwhile; the cancellation still goes on
            context.log.warning(f"could not stop solution version {arn}: {error}")

    if versions is None:
        versions = solution_versions(client, solution_arn, base_name.rsplit("-", 1)[0])
    arn, name, resumed, why = start_or_resume_solution_version(client, solution_arn, base_name, training_mode,
                                                               versions, data_as_of, stop)
    context.log.info(f"{'resuming' if resumed else 'started'} solution version {name}: {arn}"
                     + (f" ({why})" if why else ""))

    def stop_training() -> None:
        context.log.warning(f"run cancelled: stopping solution version {name}")
        stop(arn)

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
        # A resumed version was decided on by the run that started it; say so rather than today's plan.
        training_reason=why if resumed else "; ".join(part for part in (reason, why) if part),
        solution_arn=version.get("solutionArn", solution_arn), dataset_group_arn=version.get("datasetGroupArn", ""),
    )


def solution_version_metadata(version: TrainedSolutionVersion) -> dict:
    metadata = {
        "solution_version_arn": version.solution_version_arn,
        "name": version.name,
        "recipe": version.recipe_arn,
        "event_type": version.event_type or "(all event types)",
        "training_mode": version.training_mode,
        "training_reason": version.training_reason or "(none given)",
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
        `recsys-<YYYYMMDD>`), FULL or UPDATE as personalize.yaml `training` decides, waited on until ACTIVE,
        with Personalize's offline metrics (GetSolutionMetrics) as numeric metadata. A re-run resumes the
        day's version unless the datasets changed after it was created. One training at a time (pool
        `personalize_training`)."""
        client = personalize.get_client()
        solution_arn = find_solution_arn(client, personalize_dataset_import.dataset_group_arn, setup.solution.name)
        training_date = dt.date.fromisoformat(context.partition_key)
        versions = solution_versions(client, solution_arn)
        mode, reason = decide_training_mode(setup.solution, versions, training_date, setup.training,
                                            config.training_mode)
        context.log.info(f"training {mode}: {reason}")
        version = train_solution_version(
            context, client, solution_arn, f"recsys-{compact_date(context.partition_key)}", mode, config.policy(),
            data_as_of=personalize_dataset_import.data_as_of, versions=versions, reason=reason,
        )
        return MaterializeResult(value=version, metadata=solution_version_metadata(version))

    return personalize_solution_version
