"""Dataset groups, schemas, datasets and dataset import jobs."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable

from recsys_platform.shared.personalize_facts import (
    INCREMENTAL_MINIMUM_DATASET_TYPES,
    MIN_INCREMENTAL_IMPORT_RECORDS,
)
from recsys_platform.standins.local_personalize import avro_schemas, dataset_data
from recsys_platform.standins.local_personalize.arns import make_arn
from recsys_platform.standins.local_personalize.errors import (
    InvalidInputException,
    LimitExceededException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
)
from recsys_platform.standins.local_personalize.job_runner import JobContext, JobFailed, is_transient
from recsys_platform.standins.local_personalize.private_files import file_name
from recsys_platform.standins.local_personalize.resource_kinds import ResourceOperations, public


class DatasetOperations(ResourceOperations):
    max_dataset_groups: int

    # ---- dataset groups --------------------------------------------------------------------------

    def create_dataset_group(self, params: dict, region: str) -> dict:
        arn = make_arn(region, "dataset-group", params["name"])
        record = {
            "name": params["name"],
            "datasetGroupArn": arn,
            "_region": region,
            **{k: params[k] for k in ("roleArn", "kmsKeyArn", "domain") if params.get(k)},
        }
        with self.store.locked():  # count and create together, or two servers could both pass the limit
            groups = [r for r in self.store.all("dataset_group") if r.get("_region") == region]
            if len(groups) >= self.max_dataset_groups:
                raise LimitExceededException(f"At most {self.max_dataset_groups} dataset groups per region.")
            self._create("dataset_group", record)
        return public(record, ("datasetGroupArn", "domain"))

    def describe_dataset_group(self, params: dict, region: str) -> dict:
        return self._describe("dataset_group", params["datasetGroupArn"], "datasetGroupArn")

    def list_dataset_groups(self, params: dict, region: str) -> dict:
        return self._list("dataset_group", region, params)

    def delete_dataset_group(self, params: dict, region: str) -> dict:
        arn = params["datasetGroupArn"]
        with self.store.locked():
            record = self._get("dataset_group", arn, "datasetGroupArn")
            users = []
            for kind in ("dataset", "solution", "event_tracker", "filter"):
                users += self._in_use_by(kind, "datasetGroupArn", arn)
            if users or is_transient(record.get("status")):
                raise ResourceInUseException(
                    f"Dataset group {arn} is in use: delete its event tracker, filters, solutions and "
                    "datasets first."
                )
            self.store.delete("dataset_group", arn)
        return {}

    # ---- schemas ---------------------------------------------------------------------------------

    def create_schema(self, params: dict, region: str) -> dict:
        avro_schemas.parse_avro_schema(params["schema"])
        arn = make_arn(region, "schema", params["name"])
        record = {"name": params["name"], "schemaArn": arn, "schema": params["schema"], "_region": region}
        if params.get("domain"):
            record["domain"] = params["domain"]
        self._create("schema", record, start_job=False)
        return {"schemaArn": arn}

    def describe_schema(self, params: dict, region: str) -> dict:
        return self._describe("schema", params["schemaArn"], "schemaArn")

    def list_schemas(self, params: dict, region: str) -> dict:
        return self._list("schema", region, params)

    def delete_schema(self, params: dict, region: str) -> dict:
        arn = params["schemaArn"]
        with self.store.locked():
            self._get("schema", arn, "schemaArn")
            if self._in_use_by("dataset", "schemaArn", arn):
                raise ResourceInUseException(f"Schema {arn} is used by a dataset.")
            self.store.delete("schema", arn)
        return {}

    # ---- datasets --------------------------------------------------------------------------------

    def create_dataset(self, params: dict, region: str) -> dict:
        group = self._get_active("dataset_group", params["datasetGroupArn"], "datasetGroupArn")
        schema = self._get("schema", params["schemaArn"], "schemaArn")
        dataset_type = avro_schemas.canonical_dataset_type(params["datasetType"])
        fields = avro_schemas.parse_avro_schema(schema["schema"])
        avro_schemas.check_schema_fits_dataset_type(fields, dataset_type)
        arn = make_arn(region, "dataset", group["name"], dataset_type.upper())
        record = {
            "name": params["name"],
            "datasetArn": arn,
            "datasetGroupArn": group["datasetGroupArn"],
            "datasetType": dataset_type,
            "schemaArn": schema["schemaArn"],
            "_region": region,
            "_parts": [],
        }
        with self.store.locked():
            if self.store.get("dataset", arn) is not None:
                raise ResourceAlreadyExistsException(
                    f"Dataset group {group['datasetGroupArn']} already has a {dataset_type} dataset ({arn})."
                )
            self._create("dataset", record)
        return {"datasetArn": arn}

    def describe_dataset(self, params: dict, region: str) -> dict:
        return self._describe("dataset", params["datasetArn"], "datasetArn")

    def list_datasets(self, params: dict, region: str) -> dict:
        return self._list_under("dataset", region, params, "datasetGroupArn", "dataset-group")

    def delete_dataset(self, params: dict, region: str) -> dict:
        arn = params["datasetArn"]
        with self.store.locked():
            record = self._get("dataset", arn, "datasetArn")
            jobs = self._in_use_by("dataset_import_job", "datasetArn", arn)
            running = [job for job in jobs if is_transient(job["status"])]
            if running or is_transient(record.get("status")):
                raise ResourceInUseException(f"Dataset {arn} has an import job in progress.")
            self.store.delete("dataset", arn)
            shutil.rmtree(self._dataset_dir(arn), ignore_errors=True)
        return {}

    # ---- dataset import jobs ---------------------------------------------------------------------

    def create_dataset_import_job(self, params: dict, region: str) -> dict:
        dataset = self._get_active("dataset", params["datasetArn"], "datasetArn")
        location = (params.get("dataSource") or {}).get("dataLocation")
        if not location:
            raise InvalidInputException("dataSource.dataLocation is required")
        self.lake.check_csv_source(location, "dataSource.dataLocation", params.get("roleArn"))
        arn = make_arn(region, "dataset-import-job", params["jobName"])
        record = {
            "jobName": params["jobName"],
            "datasetImportJobArn": arn,
            "datasetArn": dataset["datasetArn"],
            "dataSource": {"dataLocation": location},
            "importMode": params.get("importMode") or "FULL",
            "publishAttributionMetricsToS3": bool(params.get("publishAttributionMetricsToS3", False)),
            "_region": region,
        }
        if params.get("roleArn"):
            record["roleArn"] = params["roleArn"]
        with self.store.locked():  # one import at a time per dataset: check and create together
            if self.store.get("dataset_import_job", arn) is not None:
                raise ResourceAlreadyExistsException(f"Dataset import job {arn} already exists.")
            jobs = self._in_use_by("dataset_import_job", "datasetArn", dataset["datasetArn"])
            jobs = self.runner.recover("dataset_import_job", jobs)
            running = [job for job in jobs if is_transient(job["status"])]
            if running:
                raise ResourceInUseException(
                    f"Dataset {dataset['datasetArn']} already has an import job in progress: "
                    f"{running[0]['jobName']}."
                )
            self._create("dataset_import_job", record)
        return {"datasetImportJobArn": arn}

    def _run_import(self, job: dict, context: JobContext) -> Callable[[dict], None]:
        dataset = self.store.get("dataset", job["datasetArn"])
        if dataset is None:
            raise JobFailed(f"Dataset {job['datasetArn']} was deleted.")
        schema = self.store.get("schema", dataset["schemaArn"])
        fields = avro_schemas.parse_avro_schema(schema["schema"])
        try:
            with self.lake.csv_files(job["dataSource"]["dataLocation"], "dataLocation", job.get("roleArn")) as paths:
                table = dataset_data.read_validated_csv(paths, fields)
        except InvalidInputException as error:
            raise JobFailed(str(error)) from None
        except dataset_data.ImportFailed as error:
            raise JobFailed(f"Input CSV does not match the dataset's schema: {error}") from None
        if table.num_rows == 0:
            raise JobFailed(f"{job['dataSource']['dataLocation']}: no rows after the header.")
        incremental = job["importMode"] == "INCREMENTAL"
        if incremental and dataset["datasetType"] in INCREMENTAL_MINIMUM_DATASET_TYPES:
            if table.num_rows < MIN_INCREMENTAL_IMPORT_RECORDS:
                raise JobFailed(
                    f"An INCREMENTAL import into an {dataset['datasetType']} dataset needs at least "
                    f"{MIN_INCREMENTAL_IMPORT_RECORDS} new records; {job['dataSource']['dataLocation']} "
                    f"has {table.num_rows}."
                )
        context.check()
        part_name = file_name(job["datasetImportJobArn"], ".parquet")
        dataset_data.write_part(table, self._dataset_dir(job["datasetArn"]) / part_name)

        def apply(record: dict) -> None:
            def add_part(dataset_record: dict) -> None:
                parts = [] if record["importMode"] == "FULL" else dataset_record.get("_parts", [])
                dataset_record["_parts"] = [*parts, part_name]
                dataset_record["lastUpdatedDateTime"] = time.time()

            if self.store.update("dataset", record["datasetArn"], add_part) is None:
                raise JobFailed(f"Dataset {record['datasetArn']} was deleted.")
            record["_rows"] = table.num_rows

        return apply

    def describe_dataset_import_job(self, params: dict, region: str) -> dict:
        return self._describe("dataset_import_job", params["datasetImportJobArn"], "datasetImportJobArn")

    def list_dataset_import_jobs(self, params: dict, region: str) -> dict:
        return self._list_under("dataset_import_job", region, params, "datasetArn", "dataset")
