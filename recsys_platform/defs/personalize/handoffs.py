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
class SnapshotPart:
    """A CSV object in the lake that an import job can read, and what it holds."""

    uri: str  # s3://bucket/key, what the dataset import job reads
    key: str  # the lake key
    rows: int
    sha256: str  # of the CSV's bytes: the content identity an import is compared by
    first_day: dt.date | None = None  # the interactions it holds (event_date), for interactions CSVs
    last_day: dt.date | None = None


@dataclass(frozen=True)
class DatasetSnapshot:
    """One dataset's CSV for one training run: an immutable object in the lake (what a FULL import reads)."""

    dataset: str  # interactions | items | users
    uri: str  # s3://bucket/key, what the dataset import job reads
    key: str  # the lake key
    rows: int
    sha256: str
    window: TrainingWindow | None = None  # the interactions snapshot's training window
    # interactions: the training day's rows alone (held-out users' left out), what an INCREMENTAL import reads
    increment: SnapshotPart | None = None

    @property
    def full(self) -> SnapshotPart:
        first = self.window.start if self.window else None
        return SnapshotPart(self.uri, self.key, self.rows, self.sha256, first,
                            self.window.training_date if self.window else None)


@dataclass(frozen=True)
class ImportedDataset:
    job_arn: str  # datasetImportJobArn
    job_name: str
    data_location: str  # what the job imported (dataSource.dataLocation)
    resumed: bool  # an import of that name already existed (same content) and was waited on
    import_mode: str = "FULL"  # FULL | INCREMENTAL
    sha256: str = ""  # of what the job imported (recorded when the platform started it)
    rows: int = 0
    reason: str = ""  # why this mode, and why a new job or the day's earlier one
    completed_at: dt.datetime | None = None  # the job's lastUpdatedDateTime once ACTIVE


@dataclass(frozen=True)
class DatasetImport:
    """The day's import jobs, one per dataset, all ACTIVE (interactions may be SKIPPED), and the serving
    resources provisioning made sure of."""

    dataset_group_arn: str
    import_mode: str  # the interactions dataset's: FULL | INCREMENTAL | SKIPPED
    datasets: dict[str, ImportedDataset] = field(default_factory=dict)
    import_reason: str = ""
    # When the datasets last changed (the newest ACTIVE import among them): a solution version created
    # before this instant was trained on older data and is not resumed.
    data_as_of: dt.datetime | None = None
    filter_arns: dict[str, str] = field(default_factory=dict)  # filter name -> filterArn
    event_tracker_arn: str | None = None
    tracking_id: str | None = None  # what the app's PutEvents calls name


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
    training_reason: str = ""  # why FULL or UPDATE, and why a new version or the day's earlier one
    solution_arn: str = ""
    dataset_group_arn: str = ""


@dataclass(frozen=True)
class CampaignState:
    """The campaign after the day's gate: what it serves, since when, and why."""

    campaign_arn: str
    serving_solution_version_arn: str
    serving_since: dt.datetime
    promoted: bool
    decision: str
    # What the shop's app needs beside the campaign: the filter to ask with and where to record events.
    serving_filter_arn: str | None = None
    filter_arns: dict[str, str] = field(default_factory=dict)
    event_tracker_arn: str | None = None
    tracking_id: str | None = None
    scored: bool = True  # False: the gate could not score the versions (gate.when_unscorable decided)


@dataclass(frozen=True)
class ModelComparison:
    """The v1-vs-v2 experiment of one day, as the tables the UI and the demo show."""

    window: str
    holdout_users: int
    table: str  # Markdown: Personalize's metrics, then the platform holdout's
    solution_version_arns: dict[str, str] = field(default_factory=dict)
