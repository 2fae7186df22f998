"""What every operation shares: the resource kinds, lookups with Personalize's errors, creation, paging.

Stored records hold the Describe answer's members plus private fields (names starting with `_`);
answers are projected onto the members botocore's service model lists for each operation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from recsys_platform.modelling.recommenders.base import Recommender
from recsys_platform.modelling.recommenders.model_files import ModelFileError
from recsys_platform.standins.local_personalize.arns import parse_arn
from recsys_platform.standins.local_personalize.errors import (
    InternalFailure,
    ResourceAlreadyExistsException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from recsys_platform.standins.local_personalize.job_runner import ACTIVE, JobRunner
from recsys_platform.standins.local_personalize.lakes import LakeAccess
from recsys_platform.standins.local_personalize.pagination import paginate, sort_key
from recsys_platform.standins.local_personalize.store import ARN_FIELDS, ResourceStore

MODEL_FILE = "model.npz"
# what versions trained before the switch to npz left: never loaded (a pickle can run code)
LEGACY_MODEL_FILE = "model.pkl"

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
    "filter": ("filter", "DescribeFilter", "filter", "ListFilters", "Filters"),
    "event_tracker": (
        "event-tracker", "DescribeEventTracker", "eventTracker", "ListEventTrackers", "eventTrackers",
    ),
    "data_deletion_job": (
        "data-deletion-job",
        "DescribeDataDeletionJob",
        "dataDeletionJob",
        "ListDataDeletionJobs",
        "dataDeletionJobs",
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
    "filter": "Filter",
    "event_tracker": "Event tracker",
    "data_deletion_job": "Data deletion job",
}


def public(record: dict, fields: tuple[str, ...]) -> dict:
    return {key: record[key] for key in fields if record.get(key) is not None}


class ResourceOperations:
    """Shared by the operation groups; `ControlPlane` sets these attributes up."""

    store: ResourceStore
    lake: LakeAccess
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

    def _create(self, kind: str, record: dict, start_job: bool = True, phase: str = "CREATE") -> None:
        """Store a new record (ResourceAlreadyExistsException if its ARN is taken) and start its job
        (`phase` "" for a job whose statuses have no phase: PENDING, IN_PROGRESS ...)."""
        arn = record[ARN_FIELDS[kind]]
        now = time.time()
        record.setdefault("creationDateTime", now)
        record["lastUpdatedDateTime"] = now
        if start_job:
            record.update(self.runner.new_job_fields(phase))
        with self.store.locked():
            if self.store.get(kind, arn) is not None:
                raise ResourceAlreadyExistsException(f"{LABELS[kind]} {arn} already exists.")
            self.store.put(kind, record)
        if start_job:
            self.runner.start(kind, arn)

    def _describe(self, kind: str, arn: str, field: str) -> dict:
        return {KINDS[kind][2]: public(self._get(kind, arn, field), self.describe_fields[kind])}

    def _list(
        self,
        kind: str,
        region: str,
        params: dict,
        scope: dict | None = None,
        keep: Callable[[dict], bool] = lambda r: True,
    ) -> dict:
        """One page of a List* answer. `scope`: the request's filter members, which `keep` applies."""
        records = [r for r in self.store.all(kind) if r.get("_region") == region and keep(r)]
        arn_field = ARN_FIELDS[kind]
        page, token = paginate(
            records, lambda r: sort_key(r, arn_field), KINDS[kind][3], {"region": region, **(scope or {})}, params
        )
        page = self.runner.recover(kind, page)
        answer = {KINDS[kind][4]: [public(r, self.summary_fields[kind]) for r in page]}
        if token:
            answer["nextToken"] = token
        return answer

    def _list_under(self, kind: str, region: str, params: dict, member: str, arn_type: str) -> dict:
        """A List* answer filtered by a parent (`datasetGroupArn`, `solutionArn`, ...) when given. A
        parent that does not exist lists nothing (these operations have no ResourceNotFoundException
        in the service's model); an ARN of another kind is the caller's mistake."""
        value = params.get(member)
        if value:
            parse_arn(value, arn_type, member)
        scope = {member: value} if value else {}
        return self._list(kind, region, params, scope, lambda r: not value or r.get(member) == value)

    def _in_use_by(self, kind: str, field: str, arn: str) -> list[dict]:
        return [r for r in self.store.all(kind) if r.get(field) == arn]

    def _dataset_dir(self, dataset_arn: str) -> Path:
        return self.store.resource_dir("datasets", dataset_arn)

    def model_path(self, solution_version_arn: str) -> Path:
        return self.store.resource_dir("models", solution_version_arn) / MODEL_FILE

    def load_model(self, solution_version_arn: str) -> Recommender:
        path = self.model_path(solution_version_arn)
        try:
            with path.open("rb") as handle:  # a file object: no path ends up in a message
                return Recommender.load(handle)
        except FileNotFoundError:
            if path.with_name(LEGACY_MODEL_FILE).is_file():
                raise InternalFailure(
                    f"Solution version {solution_version_arn} was trained by an earlier version of this "
                    "server, which stored models as pickles; they are not loaded (loading a pickle can "
                    "run code). Train a new solution version."
                ) from None
            raise ResourceNotFoundException(
                f"Solution version {solution_version_arn} has no trained model."
            ) from None
        except ModelFileError as error:
            raise InternalFailure(
                f"the model of solution version {solution_version_arn} cannot be read ({error}); "
                "train a new solution version"
            ) from None
