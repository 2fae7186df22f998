"""The Personalize control plane (`AmazonPersonalize.<Operation>`): one method per operation, plus the
`personalize-events` operations (PutEvents, PutItems, PutUsers), which share its state.

Each operation method takes the request's JSON members and the request's region and returns the
answer's members; `operations()` maps Personalize's operation names to them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from botocore import xform_name

from recsys_platform.shared.personalize_facts import DATA_DELETION_COMPLETED

from recsys_platform.standins.local_personalize.campaign_operations import CampaignOperations
from recsys_platform.standins.local_personalize.dataset_operations import DatasetOperations
from recsys_platform.standins.local_personalize.dataset_views import DatasetViews
from recsys_platform.standins.local_personalize.deletion_operations import DataDeletionOperations
from recsys_platform.standins.local_personalize.event_operations import EventOperations
from recsys_platform.standins.local_personalize.filter_operations import FilterOperations
from recsys_platform.standins.local_personalize.job_runner import JobRunner
from recsys_platform.standins.local_personalize.lakes import FolderLake, LakeAccess
from recsys_platform.standins.local_personalize.recipes import RecipeOperations
from recsys_platform.standins.local_personalize.resource_kinds import KINDS
from recsys_platform.standins.local_personalize.service_model import output_fields, summary_fields
from recsys_platform.standins.local_personalize.solution_operations import SolutionOperations
from recsys_platform.standins.local_personalize.store import ResourceStore

OPERATIONS = (
    "ListRecipes", "DescribeRecipe",
    "CreateDatasetGroup", "DescribeDatasetGroup", "ListDatasetGroups", "DeleteDatasetGroup",
    "CreateSchema", "DescribeSchema", "ListSchemas", "DeleteSchema",
    "CreateDataset", "DescribeDataset", "ListDatasets", "DeleteDataset",
    "CreateDatasetImportJob", "DescribeDatasetImportJob", "ListDatasetImportJobs",
    "CreateSolution", "DescribeSolution", "ListSolutions", "DeleteSolution",
    "CreateSolutionVersion", "DescribeSolutionVersion", "ListSolutionVersions",
    "StopSolutionVersionCreation", "GetSolutionMetrics",
    "CreateCampaign", "DescribeCampaign", "ListCampaigns", "UpdateCampaign", "DeleteCampaign",
    "CreateBatchInferenceJob", "DescribeBatchInferenceJob", "ListBatchInferenceJobs",
    "CreateFilter", "DescribeFilter", "ListFilters", "DeleteFilter",
    "CreateEventTracker", "DescribeEventTracker", "ListEventTrackers", "DeleteEventTracker",
    "CreateDataDeletionJob", "DescribeDataDeletionJob", "ListDataDeletionJobs",
)


class ControlPlane(
    RecipeOperations,
    DatasetOperations,
    SolutionOperations,
    CampaignOperations,
    FilterOperations,
    EventOperations,
    DataDeletionOperations,
):
    def __init__(
        self,
        store: ResourceStore,
        lake: LakeAccess | Path,
        step_delay: float = 0.05,
        stale_after: float = 20.0,
        max_concurrent_trainings: int = 20,
        max_running_jobs: int = 8,
        max_dataset_groups: int = 500,
    ) -> None:
        self.store = store
        # Where s3:// locations are read and written: a lake folder, or S3 itself (lakes.S3Lake).
        self.lake = lake if isinstance(lake, LakeAccess) else FolderLake(lake)
        self.max_concurrent_trainings = max_concurrent_trainings
        self.max_dataset_groups = max_dataset_groups
        self.views = DatasetViews(store, self._dataset_dir)
        nothing_to_do = lambda record, context: None  # noqa: E731 - created ACTIVE after the lifecycle
        self.runner = JobRunner(
            store,
            workers={
                "dataset_group": nothing_to_do,
                "dataset": nothing_to_do,
                "solution": nothing_to_do,
                "filter": nothing_to_do,
                "event_tracker": nothing_to_do,
                "dataset_import_job": self._run_import,
                "solution_version": self._run_training,
                "campaign": self._run_campaign,
                "batch_inference_job": self._run_batch_inference,
                "data_deletion_job": self._run_data_deletion,
            },
            step_delay=step_delay,
            stale_after=stale_after,
            on_status=self._mirror_campaign_update,
            max_running_jobs=max_running_jobs,
            done_statuses={"data_deletion_job": DATA_DELETION_COMPLETED},
            after_finish=self._after_finish,
        )
        self.describe_fields = {kind: output_fields(spec[1], spec[2]) for kind, spec in KINDS.items()}
        self.summary_fields = {kind: summary_fields(spec[3], spec[4]) for kind, spec in KINDS.items()}

    def operations(self) -> dict[str, Callable[[dict, str], dict]]:
        return {name: getattr(self, xform_name(name)) for name in OPERATIONS}

    def _after_finish(self, kind: str, record: dict) -> None:
        """A new ACTIVE solution version (or a campaign that settled) moves the campaigns that follow
        their solution (campaignConfig.syncWithLatestSolutionVersion) to its newest ACTIVE version."""
        if kind in ("solution_version", "campaign") and record.get("solutionArn"):
            self.sync_campaigns(record["solutionArn"])
