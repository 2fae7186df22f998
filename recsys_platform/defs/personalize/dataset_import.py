"""personalize_dataset_import: loads the day's three snapshots into the Personalize datasets.

Start-or-resume: job names derive from the training date, so a retried or re-executed step finds the
import it started before and waits on it instead of paying for a second one.
"""

import datetime as dt
from typing import Literal

from dagster import AssetExecutionContext, AssetsDefinition, DailyPartitionsDefinition, MaterializeResult, asset
from pydantic import Field

from recsys_platform.defs.personalize.provisioning import provision
from recsys_platform.defs.personalize.handoffs import DatasetImport, DatasetSnapshot, ImportedDataset
from recsys_platform.defs.personalize.job_waiting import attempt_name, list_all, wait_until_active
from recsys_platform.defs.personalize.personalize_setup import DATASET_KEYS, PersonalizeSetup
from recsys_platform.defs.personalize.snapshots import GROUP, HANDOFF_IO_MANAGER
from recsys_platform.defs.personalize.wait_config import PersonalizeWaitConfig
from recsys_platform.lib.personalize_clients import PersonalizeResource


class DatasetImportConfig(PersonalizeWaitConfig):
    import_mode: Literal["FULL", "INCREMENTAL"] = Field(
        default="FULL",
        description="FULL replaces each dataset's data with the snapshots; INCREMENTAL appends the snapshots to what "
                    "the datasets hold (overlapping windows import rows twice, and rows imported before they fell in "
                    "the holdout period stay in training).",
    )


def compact_date(partition_key: str) -> str:
    return dt.date.fromisoformat(partition_key).strftime("%Y%m%d")


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
        personalize_interactions_csv: DatasetSnapshot,
        personalize_items_csv: DatasetSnapshot,
        personalize_users_csv: DatasetSnapshot,
    ) -> MaterializeResult[DatasetImport]:
        """Dataset import jobs that load this day's three snapshots into the Personalize datasets, waited
        on until ACTIVE. Job names are `recsys-<dataset>-<YYYYMMDD>`; a re-run resumes the day's jobs."""
        snapshots = {"interactions": personalize_interactions_csv, "items": personalize_items_csv,
                     "users": personalize_users_csv}
        client = personalize.get_client()
        arns = provision(client, setup, config.policy(), log=context.log.info)
        day = compact_date(context.partition_key)
        started = {
            key: start_or_resume_import(client, arns.dataset_arns[key], f"recsys-{key}-{day}", snapshots[key].uri,
                                        config.import_mode, personalize.service_role_arn)
            for key in DATASET_KEYS
        }
        imported, metadata = {}, {"dataset_group_arn": arns.dataset_group_arn, "import_mode": config.import_mode}
        for key, (job_arn, name, resumed) in started.items():
            location = snapshots[key].uri
            context.log.info(f"{'resuming' if resumed else 'started'} import {name} of {location}")
            job = wait_until_active(
                lambda arn=job_arn: client.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"],
                f"dataset import job {name}", config.policy(), log=context.log.info,
            )
            imported_location = job["dataSource"]["dataLocation"]
            if imported_location != location:
                # A re-executed day keeps the import it already paid for; say so rather than imply a fresh one.
                context.log.warning(f"import {name} loaded {imported_location}, not this run's snapshot {location}")
            imported[key] = ImportedDataset(job_arn=job_arn, job_name=name, data_location=imported_location,
                                            resumed=resumed)
            metadata.update({f"{key}_job_arn": job_arn, f"{key}_data_location": imported_location,
                             f"{key}_resumed": resumed})
        return MaterializeResult(
            value=DatasetImport(arns.dataset_group_arn, config.import_mode, imported), metadata=metadata
        )

    return personalize_dataset_import
