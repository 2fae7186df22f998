"""personalize_dataset_import: loads the day's snapshots into the Personalize datasets.

Interactions go in FULL (the training window) or INCREMENTAL (the training day alone) by the import
policy of personalize.yaml (`imports`, decided in import_policy.py); items and users always FULL.

Start-or-resume: job names derive from the training date, so a retried or re-executed step finds the
import it started before and waits on it instead of paying for a second one, as long as that import
loaded the same content: beside each job the platform starts, the lake keeps a record of the snapshot's
sha256 (`personalize/imports/<jobName>.json`), and a day whose data changed gets a new import (the next
attempt name), so a re-run never trains on a stale snapshot while reporting success.
"""

import datetime as dt
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

from recsys_platform.defs.personalize.handoffs import DatasetImport, DatasetSnapshot, ImportedDataset
from recsys_platform.defs.personalize.import_policy import (
    SKIPPED,
    ImportDecision,
    ImportRecord,
    PastImport,
    decide_import,
    dump_record,
    holdout_settings,
    import_base_name,
    parse_record,
    past_import,
    record_key,
)
from recsys_platform.defs.personalize.job_waiting import (
    PersonalizeJobFailed,
    WaitPolicy,
    list_all,
    new_attempt_name,
    wait_until_active,
)
from recsys_platform.defs.personalize.personalize_setup import DATASET_KEYS, PersonalizeSetup
from recsys_platform.defs.personalize.provisioning import provision
from recsys_platform.defs.personalize.snapshots import GROUP, HANDOFF_IO_MANAGER
from recsys_platform.defs.personalize.wait_config import PersonalizeWaitConfig
from recsys_platform.lib.lake import LakeResource
from recsys_platform.lib.personalize_clients import PersonalizeResource
from recsys_platform.shared.personalize_facts import ACTIVE, is_failed


class DatasetImportConfig(PersonalizeWaitConfig):
    import_mode: Literal["policy", "FULL"] = Field(
        default="policy",
        description="policy: FULL or INCREMENTAL as personalize.yaml `imports` decides (metadata says why); "
                    "FULL: import the whole window now (e.g. after correcting data), whatever the policy says.",
    )


def compact_date(partition_key: str) -> str:
    return dt.date.fromisoformat(partition_key).strftime("%Y%m%d")


def import_history(client, dataset_arn: str, what: str, policy: WaitPolicy, log=None) -> list[PastImport]:
    """The dataset's import jobs once none is in flight: Personalize runs one import per dataset at a time,
    and a decision about what the dataset holds needs the jobs settled."""
    while True:
        jobs = [past_import(s) for s in list_all(client, "list_dataset_import_jobs", "datasetImportJobs",
                                                   datasetArn=dataset_arn)]
        running = [job for job in jobs if job.status != ACTIVE and not is_failed(job.status)]
        if not running:
            return jobs
        for job in running:
            try:
                wait_until_active(
                    lambda arn=job.job_arn: client.describe_dataset_import_job(datasetImportJobArn=arn)[
                        "datasetImportJob"],
                    f"{what}: dataset import job {job.job_name} (in flight)", policy, log=log,
                )
            except PersonalizeJobFailed:
                pass  # a failed job changed nothing; the next listing shows it failed


def start_import(client, lake: LakeResource, dataset_arn: str, dataset: str, training_date: dt.date,
                 decision: ImportDecision, existing_names: list[str], holdout: dict[str, str],
                 role_arn: str | None) -> tuple[str, str]:
    """(datasetImportJobArn, jobName) of a new import job for the decision, its record written first."""
    name = new_attempt_name(import_base_name(dataset, training_date), existing_names)
    part = decision.part
    # The record goes first: a job is never without one (a record without a job is replaced by the next
    # attempt of the same name).
    lake.replace_text(record_key(name), dump_record(ImportRecord(
        job_name=name, dataset=dataset, data_location=part.uri, import_mode=decision.mode, sha256=part.sha256,
        rows=part.rows, training_date=training_date, first_day=part.first_day, last_day=part.last_day,
        holdout=holdout,
    )))
    params = {
        "jobName": name,
        "datasetArn": dataset_arn,
        "dataSource": {"dataLocation": part.uri},
        "importMode": decision.mode,
    }
    if role_arn:
        params["roleArn"] = role_arn
    try:
        return client.create_dataset_import_job(**params)["datasetImportJobArn"], name
    except client.exceptions.ResourceAlreadyExistsException:
        # botocore retries a create whose answer was lost (a 5xx after Personalize accepted it), and the
        # retry is refused as a duplicate of the job this call started: that job is the one to wait on.
        started = _import_job_named(client, dataset_arn, name, part.uri)
        if started is None:
            raise
        return started, name


def _import_job_named(client, dataset_arn: str, name: str, data_location: str) -> str | None:
    """The ARN of the dataset's import job `name` if it reads `data_location`."""
    for summary in list_all(client, "list_dataset_import_jobs", "datasetImportJobs", datasetArn=dataset_arn):
        if summary["jobName"] == name:
            job = client.describe_dataset_import_job(datasetImportJobArn=summary["datasetImportJobArn"])
            source = job["datasetImportJob"].get("dataSource", {}).get("dataLocation")
            return summary["datasetImportJobArn"] if source == data_location else None
    return None


def _record_loader(lake: LakeResource):
    def load(job_name: str) -> ImportRecord | None:
        try:
            return parse_record(lake.read_text(record_key(job_name)))
        except FileNotFoundError:
            return None

    return load


def build_dataset_import(setup: PersonalizeSetup, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    @asset(
        group_name=GROUP,
        kinds={"personalize"},
        partitions_def=partitions,
        io_manager_key=HANDOFF_IO_MANAGER,
    )
    def personalize_dataset_import(
        context: AssetExecutionContext,
        config: DatasetImportConfig,
        personalize: PersonalizeResource,
        lake: LakeResource,
        personalize_interactions_csv: DatasetSnapshot,
        personalize_items_csv: DatasetSnapshot,
        personalize_users_csv: DatasetSnapshot,
    ) -> MaterializeResult[DatasetImport]:
        """Dataset import jobs that load this day's snapshots into the Personalize datasets, waited on until
        ACTIVE: interactions FULL (the window) or INCREMENTAL (the day) as personalize.yaml `imports` decides,
        items and users FULL. Job names are `recsys-<dataset>-<YYYYMMDD>`; a re-run resumes the day's jobs
        when they loaded the same content and starts the next attempt when the data changed. Metadata: the
        mode and why, per dataset the job, what it loaded and why it was started or resumed; the filters and
        the event tracker's trackingId provisioning made sure of."""
        snapshots = {"interactions": personalize_interactions_csv, "items": personalize_items_csv,
                     "users": personalize_users_csv}
        client = personalize.get_client()
        policy = config.policy()
        arns = provision(client, setup, policy, log=context.log.info)
        training_date = dt.date.fromisoformat(context.partition_key)
        holdout = holdout_settings(setup.holdout.seed, setup.holdout.percent_users, setup.holdout.days)
        load_record = _record_loader(lake)

        imported: dict[str, ImportedDataset] = {}
        decisions: dict[str, ImportDecision] = {}
        for key in DATASET_KEYS:
            snapshot, dataset_arn = snapshots[key], arns.dataset_arns[key]
            history = import_history(client, dataset_arn, key, policy, log=context.log.info)
            decision = decide_import(
                key, history, training_date, snapshot.full, snapshot.increment if key == "interactions" else None,
                setup.imports, holdout, load_record, force_full=config.import_mode == "FULL",
            )
            decisions[key] = decision
            context.log.info(f"{key}: {decision.mode}, {decision.reason}")
            if decision.mode == SKIPPED:
                continue
            if decision.resume is not None:
                job_arn, name, resumed = decision.resume.job_arn, decision.resume.job_name, True
            else:
                job_arn, name = start_import(client, lake, dataset_arn, key, training_date, decision,
                                             [job.job_name for job in history], holdout, personalize.service_role_arn)
                resumed = False
            job = wait_until_active(
                lambda arn=job_arn: client.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"],
                f"dataset import job {name}", policy, log=context.log.info,
            )
            imported[key] = ImportedDataset(
                job_arn=job_arn, job_name=name, data_location=job["dataSource"]["dataLocation"], resumed=resumed,
                import_mode=job.get("importMode") or decision.mode, sha256=decision.part.sha256,
                rows=decision.part.rows, reason=decision.reason, completed_at=job.get("lastUpdatedDateTime"),
            )

        # What training will read: the datasets as their newest ACTIVE imports left them.
        landed = [job.landed for key in DATASET_KEYS
                  for job in import_history(client, arns.dataset_arns[key], key, policy) if job.status == ACTIVE]
        interactions = decisions["interactions"]
        value = DatasetImport(
            dataset_group_arn=arns.dataset_group_arn, import_mode=interactions.mode, datasets=imported,
            import_reason=interactions.reason, data_as_of=max(landed) if landed else None,
            filter_arns=arns.filter_arns, event_tracker_arn=arns.event_tracker_arn, tracking_id=arns.tracking_id,
        )
        return MaterializeResult(value=value, metadata=import_metadata(value, decisions, setup))

    return personalize_dataset_import


def import_metadata(value: DatasetImport, decisions: dict[str, ImportDecision], setup: PersonalizeSetup) -> dict:
    metadata: dict = {
        "dataset_group_arn": value.dataset_group_arn,
        "import_mode": value.import_mode,
        "import_reason": value.import_reason,
        "data_as_of": value.data_as_of.isoformat() if value.data_as_of else "(no import)",
        "filter_arns": MetadataValue.json(value.filter_arns),
        "serving_filter_arn": value.filter_arns.get(setup.serving_filter or "", "(none)"),
        "event_tracker_arn": value.event_tracker_arn or "(none)",
        "tracking_id": value.tracking_id or "(none)",
    }
    for key, decision in decisions.items():
        metadata[f"{key}_import_mode"] = decision.mode
        metadata[f"{key}_reason"] = decision.reason
        job = value.datasets.get(key)
        if job is None:
            continue
        metadata.update({
            f"{key}_job_arn": job.job_arn,
            f"{key}_job_name": job.job_name,
            f"{key}_data_location": job.data_location,
            f"{key}_sha256": job.sha256,
            f"{key}_rows_imported": MetadataValue.int(job.rows),
            f"{key}_resumed": job.resumed,
        })
    return metadata
