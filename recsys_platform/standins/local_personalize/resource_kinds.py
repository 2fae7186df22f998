"""What every operation shares: the resource kinds, lookups with Personalize's errors, creation, paging.

Stored records hold the Describe answer's members plus private fields (names starting with `_`);
answers are projected onto the members botocore's service model lists for each operation.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from recsys_platform.standins.local_personalize.arns import parse_arn
from recsys_platform.standins.local_personalize.errors import (
    InvalidNextTokenException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from recsys_platform.standins.local_personalize.job_runner import ACTIVE, JobRunner
from recsys_platform.standins.local_personalize.store import ARN_FIELDS, ResourceStore
from recsys_platform.modelling.recommenders.base import Recommender

# kind -> (ARN resource type, Describe operation, its answer's key, List operation, its answer's key)
KINDS = {
    "dataset_group": (
        "dataset-group", "DescribeDatasetGroup", "datasetGroup", "ListDatasetGroups", "datasetGroups",
    ),
    "schema": ("schema", "DescribeSchema", "schema", "ListSchemas", "schemas"),
    "dataset": ("dataset", "DescribeDataset", "dataset", "ListDatasets", "datasets"),
    "dataset_import_job": (
        "dataset-import-job",
        "DescribeDatasetImportJob",
        "datasetImportJob",
        "ListDatasetImportJobs",
        "datasetImportJobs",
    ),
    "solution": ("solution", "DescribeSolution", "solution", "ListSolutions", "solutions"),
    "solution_version": (
        "solution", "DescribeSolutionVersion", "solutionVersion", "ListSolutionVersions", "solutionVersions",
    ),
    "campaign": ("campaign", "DescribeCampaign", "campaign", "ListCampaigns", "campaigns"),
    "batch_inference_job": (
        "batch-inference-job",
        "DescribeBatchInferenceJob",
        "batchInferenceJob",
        "ListBatchInferenceJobs",
        "batchInferenceJobs",
    ),
}
LABELS = {
    "dataset_group": "Dataset group",
    "schema": "Schema",
    "dataset": "Dataset",
    "dataset_import_job": "Dataset import job",
    "solution": "Solution",
    "solution_version": "Solution version",
    "campaign": "Campaign",
    "batch_inference_job": "Batch inference job",
}


def public(record: dict, fields: tuple[str, ...]) -> dict:
    return {key: record[key] for key in fields if record.get(key) is not None}


class ResourceOperations:
    """Shared by the operation groups; `ControlPlane` sets these attributes up."""

    store: ResourceStore
    lake_root: Path
    runner: JobRunner
    describe_fields: dict[str, tuple[str, ...]]
    summary_fields: dict[str, tuple[str, ...]]

    def _get(self, kind: str, arn: str, field: str) -> dict:
        parse_arn(arn, KINDS[kind][0], field)
        record = self.store.get(kind, arn)
        if record is None:
            raise ResourceNotFoundException(f"{LABELS[kind]} {arn} does not exist.")
        return self.runner.recover(kind, [record])[0]

    def _get_active(self, kind: str, arn: str, field: str) -> dict:
        record = self._get(kind, arn, field)
        if record.get("status", ACTIVE) != ACTIVE:
            raise ResourceInUseException(f"{LABELS[kind]} {arn} is not ACTIVE (status {record['status']}).")
        return record

    def _create(self, kind: str, record: dict, start_job: bool = True) -> None:
        """Store a new record (ResourceAlreadyExistsException if its ARN is taken) and start its job."""
        arn = record[ARN_FIELDS[kind]]
        now = time.time()
        record.setdefault("creationDateTime", now)
        record["lastUpdatedDateTime"] = now
        if start_job:
            record.update(self.runner.new_job_fields())
        with self.store.locked():
            if self.store.get(kind, arn) is not None:
                raise ResourceAlreadyExistsException(f"{LABELS[kind]} {arn} already exists.")
            self.store.put(kind, record)
        if start_job:
            self.runner.start(kind, arn)

    def _describe(self, kind: str, arn: str, field: str) -> dict:
        return {KINDS[kind][2]: public(self._get(kind, arn, field), self.describe_fields[kind])}

    def _list(
        self, kind: str, region: str, params: dict, keep: Callable[[dict], bool] = lambda r: True
    ) -> dict:
        max_results = params.get("maxResults") or 100
        offset = self._decode_token(params.get("nextToken"))
        records = [r for r in self.store.all(kind) if r.get("_region") == region and keep(r)]
        records.sort(key=lambda r: (-r.get("creationDateTime", 0), r[ARN_FIELDS[kind]]))
        page = self.runner.recover(kind, records[offset : offset + max_results])
        answer = {KINDS[kind][4]: [public(r, self.summary_fields[kind]) for r in page]}
        if offset + max_results < len(records):
            next_page = json.dumps({"offset": offset + max_results}).encode()
            answer["nextToken"] = base64.urlsafe_b64encode(next_page).decode()
        return answer

    @staticmethod
    def _decode_token(token: str | None) -> int:
        if not token:
            return 0
        try:
            offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise InvalidNextTokenException(
                f"nextToken {token!r} is not a token this service issued."
            ) from None
        if not isinstance(offset, int) or offset < 0:
            raise InvalidNextTokenException(f"nextToken {token!r} is not a token this service issued.")
        return offset

    def _in_use_by(self, kind: str, field: str, arn: str) -> list[dict]:
        return [r for r in self.store.all(kind) if r.get(field) == arn]

    def _dataset_dir(self, dataset_arn: str) -> Path:
        return self.store.data_dir("datasets", urllib.parse.quote(dataset_arn, safe=""))

    def model_path(self, solution_version_arn: str) -> Path:
        return self.store.data_dir("models", urllib.parse.quote(solution_version_arn, safe=""), "model.pkl")

    def load_model(self, solution_version_arn: str) -> Recommender:
        path = self.model_path(solution_version_arn)
        if not path.is_file():
            raise ResourceNotFoundException(f"Solution version {solution_version_arn} has no trained model.")
        return Recommender.load(path)

