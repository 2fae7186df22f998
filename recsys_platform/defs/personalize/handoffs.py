"""What each step of the Personalize chain hands to the next, as typed values (stored by the lake's
hand-off IO manager). Field names follow Personalize's own where there is one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class TrainingWindow:
    """The days one training run learns from, and where the platform's holdout starts."""

    training_date: dt.date
    window_days: int
    holdout_days: int
    timezone: str

    @property
    def start(self) -> dt.date:
        return self.training_date - dt.timedelta(days=self.window_days - 1)

    @property
    def holdout_start(self) -> dt.date:
        return self.training_date - dt.timedelta(days=self.holdout_days - 1)

    @property
    def holdout_cut(self) -> int:
        """Epoch seconds of the holdout's first day's midnight in the property's time zone."""
        midnight = dt.datetime.combine(self.holdout_start, dt.time(), tzinfo=ZoneInfo(self.timezone))
        return int(midnight.timestamp())

    @property
    def label(self) -> str:
        return f"{self.start} .. {self.training_date}"


@dataclass(frozen=True)
class DatasetSnapshot:
    """One dataset's CSV for one training run: an immutable object in the lake."""

    dataset: str  # interactions | items | users
    uri: str  # s3://bucket/key, what the dataset import job reads
    key: str  # the lake key
    rows: int
    sha256: str
    window: TrainingWindow | None = None  # the interactions snapshot's training window


@dataclass(frozen=True)
class ImportedDataset:
    job_arn: str  # datasetImportJobArn
    job_name: str
    data_location: str  # what the job imported (dataSource.dataLocation)
    resumed: bool  # an import of that name already existed and was waited on


@dataclass(frozen=True)
class DatasetImport:
    """The day's import jobs, one per dataset, all ACTIVE."""

    dataset_group_arn: str
    import_mode: str  # FULL | INCREMENTAL
    datasets: dict[str, ImportedDataset] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainedSolutionVersion:
    """An ACTIVE solution version and Personalize's offline metrics of it (GetSolutionMetrics)."""

    solution_version_arn: str
    name: str
    recipe_arn: str
    event_type: str | None
    training_mode: str
    resumed: bool
    metrics: dict[str, float] = field(default_factory=dict)
    training_hours: float | None = None


@dataclass(frozen=True)
class CampaignState:
    """The campaign after the day's gate: what it serves, since when, and why."""

    campaign_arn: str
    serving_solution_version_arn: str
    serving_since: dt.datetime
    promoted: bool
    decision: str


@dataclass(frozen=True)
class ModelComparison:
    """The v1-vs-v2 experiment of one day, as the tables the UI and the demo show."""

    window: str
    holdout_users: int
    table: str  # Markdown: Personalize's metrics, then the platform holdout's
    solution_version_arns: dict[str, str] = field(default_factory=dict)
