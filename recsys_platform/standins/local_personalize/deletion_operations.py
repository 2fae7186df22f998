"""Data deletion jobs: CreateDataDeletionJob / DescribeDataDeletionJob / ListDataDeletionJobs.

As the developer guide describes ("Deleting users"): the input is a CSV object in the lake with a
single USER_ID column; the job deletes those users and their data from the dataset group's datasets,
so the next training no longer sees them. Statuses PENDING > IN_PROGRESS > COMPLETED or FAILED (with
failureReason); `numDeleted` counts the records deleted. At most 5 jobs may be PENDING per dataset
group and an input holds at most 100 MB.

Here the job rewrites the Interactions and Users datasets' bulk parts without those users' rows (and
deletes the old part files: the data must not stay on disk), drops their events recorded with
PutEvents (including anonymous events of sessions that one of their events tied to them) and their
PutUsers records. Models already trained keep what they learned until the next training, as on the
service ("After the job completes, ... create a new solution version"). An import that finishes while
the job runs fails the job (the guide: "If any training or import occurs, we can't guarantee that the
users' data will be deleted"); create the job again.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recsys_platform.shared.personalize_facts import (
    MAX_DATA_DELETION_INPUT_BYTES,
    MAX_PENDING_DATA_DELETION_JOBS,
)
from recsys_platform.standins.local_personalize import dataset_data
from recsys_platform.standins.local_personalize.arns import make_arn
from recsys_platform.standins.local_personalize.dataset_views import DatasetViews, dataset_arn
from recsys_platform.standins.local_personalize.errors import (
    InvalidInputException,
    LimitExceededException,
    ResourceAlreadyExistsException,
)
from recsys_platform.standins.local_personalize.job_runner import JobContext, JobFailed
from recsys_platform.standins.local_personalize.private_files import file_name
from recsys_platform.standins.local_personalize.resource_kinds import ResourceOperations
from recsys_platform.standins.local_personalize.tracked_events import (
    EVENTS_FILE,
    RECORDS_FILE,
    read_lines,
    rewrite_lines,
)

USER_DATASETS = ("Interactions", "Users")


def read_user_ids(path, location: str) -> set[str]:
    """The USER_IDs of a deletion input: a CSV with a single USER_ID column."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline().strip().lstrip("\ufeff")
    if [name.strip().strip('"').upper() for name in header.split(",")] != ["USER_ID"]:
        raise JobFailed(f"{location}: the header must be the single column USER_ID, got {header[:80]!r}")
    try:  # IDs as text: 007 stays 007
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={header.strip('"'): pa.string()}, strings_can_be_null=True))
    except pa.ArrowInvalid as error:
        raise JobFailed(f"{location}: not a CSV of user IDs ({error})") from None
    return {value for value in table.column(0).to_pylist() if value}


class DataDeletionOperations(ResourceOperations):
    views: DatasetViews

    def create_data_deletion_job(self, params: dict, region: str) -> dict:
        group = self._get_active("dataset_group", params["datasetGroupArn"], "datasetGroupArn")
        location = (params.get("dataSource") or {}).get("dataLocation")
        if not location:
            raise InvalidInputException("dataSource.dataLocation is required")
        if self.lake.object_size(location, "dataSource.dataLocation", params["roleArn"]) > MAX_DATA_DELETION_INPUT_BYTES:
            raise InvalidInputException(
                f"dataSource.dataLocation {location!r} is larger than {MAX_DATA_DELETION_INPUT_BYTES} bytes"
            )
        record = {
            "jobName": params["jobName"],
            "dataDeletionJobArn": make_arn(region, "data-deletion-job", params["jobName"]),
            "datasetGroupArn": group["datasetGroupArn"],
            "dataSource": {"dataLocation": location},
            "roleArn": params["roleArn"],
            "_region": region,
        }
        with self.store.locked():
            if self.store.get("data_deletion_job", record["dataDeletionJobArn"]) is not None:
                raise ResourceAlreadyExistsException(f"Data deletion job {record['dataDeletionJobArn']} already exists.")
            jobs = self.runner.recover(
                "data_deletion_job", self._in_use_by("data_deletion_job", "datasetGroupArn", group["datasetGroupArn"])
            )
            pending = [job for job in jobs if job["status"] == "PENDING"]
            if len(pending) >= MAX_PENDING_DATA_DELETION_JOBS:
                raise LimitExceededException(
                    f"Dataset group {group['datasetGroupArn']} has {len(pending)} PENDING data deletion jobs "
                    f"(at most {MAX_PENDING_DATA_DELETION_JOBS})."
                )
            self._create("data_deletion_job", record, phase="")
        return {"dataDeletionJobArn": record["dataDeletionJobArn"]}

    def describe_data_deletion_job(self, params: dict, region: str) -> dict:
        return self._describe("data_deletion_job", params["dataDeletionJobArn"], "dataDeletionJobArn")

    def list_data_deletion_jobs(self, params: dict, region: str) -> dict:
        return self._list_under("data_deletion_job", region, params, "datasetGroupArn", "dataset-group")

    def _run_data_deletion(self, job: dict, context: JobContext) -> Callable[[dict], None]:
        location = job["dataSource"]["dataLocation"]
        try:
            with self.lake.object_file(location, "dataSource.dataLocation", job.get("roleArn")) as path:
                users = read_user_ids(path, location)
        except InvalidInputException as error:
            raise JobFailed(str(error)) from None
        group_arn = job["datasetGroupArn"]
        plans = []  # (dataset ARN, parts before, parts after, rows deleted, files written, files replaced)
        for dataset_type in USER_DATASETS:
            dataset = self.views.dataset(group_arn, dataset_type)
            if dataset is None:
                continue
            folder = self._dataset_dir(dataset["datasetArn"])
            before = list(dataset.get("_parts", []))
            after, written, replaced, deleted = [], [], [], 0
            for part in before:
                table = pq.read_table(folder / part)
                column = next(name for name in table.column_names if name.upper() == "USER_ID")
                keep = pc.invert(pc.is_in(table.column(column), value_set=pa.array(sorted(users), pa.string())))
                kept = table.filter(keep)
                if kept.num_rows == table.num_rows:
                    after.append(part)
                    continue
                deleted += table.num_rows - kept.num_rows
                name = file_name(f"{job['dataDeletionJobArn']}/{part}", ".parquet")
                dataset_data.write_part(kept, folder / name)
                after.append(name)
                written.append(folder / name)
                replaced.append(folder / part)
            plans.append((dataset["datasetArn"], before, after, deleted, written, replaced))
            context.check()

        def apply(record: dict) -> None:
            changed = [
                arn for arn, before, *_ in plans
                if (self.store.get("dataset", arn) or {}).get("_parts") != before
            ]
            if changed:
                for *_, written, _ in plans:
                    for file in written:
                        file.unlink(missing_ok=True)
                raise JobFailed(
                    f"an import into {changed[0]} finished while this job ran, so its users' rows may "
                    "remain; create the data deletion job again"
                )
            total = 0
            for arn, _, after, deleted, _, replaced in plans:
                self.store.update("dataset", arn, lambda dataset, after=after: dataset.update(_parts=after))
                for file in replaced:  # the deleted users' rows must not stay on disk
                    file.unlink(missing_ok=True)
                total += deleted
            total += self._delete_individual_records(group_arn, users)
            record["numDeleted"] = total

        return apply

    def _delete_individual_records(self, group_arn: str, users: set[str]) -> int:
        """Drop the users' recorded events and PutUsers records; the number of records dropped."""
        deleted = 0
        interactions = dataset_arn(group_arn, "Interactions")
        events = self._dataset_dir(interactions) / EVENTS_FILE
        # sessions one of the users' events names: their anonymous events are the users' too
        sessions = {line.get("s") for line in read_lines(events) if line.get("u") in users and line.get("s")}

        def keeps_event(line: dict) -> bool:
            owner = line.get("u") or line.get("s")
            return owner not in users and not (not line.get("u") and line.get("s") in sessions)

        deleted += rewrite_lines(events, keeps_event)
        records = self._dataset_dir(dataset_arn(group_arn, "Users")) / RECORDS_FILE
        deleted += rewrite_lines(records, lambda line: str(line.get("id")) not in users)
        return deleted
