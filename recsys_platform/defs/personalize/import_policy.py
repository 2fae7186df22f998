"""Which import a dataset gets on a training day: FULL, INCREMENTAL, none, or the day's earlier one again.

The interactions dataset holds, between two FULL imports, exactly "the window of the last FULL import
plus each later day once". An INCREMENTAL import appends the training day's rows (the snapshot's
`increment`), so it is safe only when that stays true:
- the last FULL import is the platform's, and its holdout settings are today's (otherwise rows of users
  who are held out now may be in it);
- the newest import is the previous day's (no day missing, none imported twice, and no later day in the
  datasets: training an earlier day on data imported for a later one would train on its future and on
  its held-out users' targets);
- the increment brings the 1,000 records Personalize requires of an INCREMENTAL import.
Otherwise the import is FULL (or, by `imports.incremental_below_minimum: skip`, none that day), and the
decision's reason says which rule applied.

A re-run of a day resumes the day's earlier import only when it is the newest import of the dataset and
loaded the same content (sha256, recorded beside each job the platform starts); otherwise the day gets
a new FULL import (the next attempt name), because appending again would duplicate rows. Items and users
are imported FULL, and not at all when the newest import already loaded the same content (an unchanged
catalogue).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import TypeAdapter

from recsys_platform.defs.personalize.handoffs import SnapshotPart
from recsys_platform.defs.personalize.job_waiting import attempt_number
from recsys_platform.defs.personalize.personalize_setup import ImportPolicy
from recsys_platform.shared.personalize_facts import ACTIVE, MIN_INCREMENTAL_IMPORT_RECORDS

FULL, INCREMENTAL, SKIPPED = "FULL", "INCREMENTAL", "SKIPPED"
RECORD_PREFIX = "personalize/imports"
_PLATFORM_JOB = re.compile(r"^recsys-(?P<dataset>[a-z]+)-(?P<day>\d{8})(?:-a\d+)?$")


def import_base_name(dataset: str, training_date: dt.date) -> str:
    return f"recsys-{dataset}-{training_date.strftime('%Y%m%d')}"


@dataclass(frozen=True)
class ImportRecord:
    """What the platform wrote beside an import job when it started it (the job itself keeps only the
    data location): the content's hash, its rows and days, and the holdout settings it was cut with."""

    job_name: str
    dataset: str
    data_location: str
    import_mode: str
    sha256: str
    rows: int
    training_date: dt.date
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    holdout: dict[str, str] = field(default_factory=dict)


def record_key(job_name: str) -> str:
    return f"{RECORD_PREFIX}/{job_name}.json"


def dump_record(record: ImportRecord) -> str:
    return TypeAdapter(ImportRecord).dump_json(record, indent=1).decode()


def parse_record(text: str) -> ImportRecord:
    return TypeAdapter(ImportRecord).validate_json(text)


@dataclass(frozen=True)
class PastImport:
    """One import job of the dataset, as ListDatasetImportJobs shows it."""

    job_name: str
    job_arn: str
    status: str
    import_mode: str
    created_at: dt.datetime
    completed_at: dt.datetime | None  # lastUpdatedDateTime; for an ACTIVE job, when its data landed
    training_date: dt.date | None  # from the platform's job name; None for a job the platform did not name

    @property
    def landed(self) -> dt.datetime:
        return self.completed_at or self.created_at


def past_import(summary: dict) -> PastImport:
    match = _PLATFORM_JOB.match(summary["jobName"])
    day = dt.datetime.strptime(match.group("day"), "%Y%m%d").date() if match else None
    return PastImport(
        job_name=summary["jobName"], job_arn=summary["datasetImportJobArn"], status=summary["status"],
        import_mode=summary.get("importMode") or FULL, created_at=summary["creationDateTime"],
        completed_at=summary.get("lastUpdatedDateTime"), training_date=day,
    )


@dataclass(frozen=True)
class ImportDecision:
    mode: str  # FULL | INCREMENTAL | SKIPPED
    reason: str
    part: SnapshotPart | None  # what the new job (or the resumed one) imports; None when SKIPPED
    resume: PastImport | None = None  # the day's earlier job, which already loaded `part`


def holdout_settings(seed: str, percent_users: int, days: int) -> dict[str, str]:
    """What decides which rows a FULL snapshot leaves out (the users, and where the cut falls)."""
    return {"seed": seed, "percent_users": str(percent_users), "days": str(days)}


def _same_content(record: ImportRecord | None, job: PastImport, part: SnapshotPart) -> tuple[bool, str]:
    if record is None:
        return False, f"no record of what {job.job_name} loaded ({record_key(job.job_name)} is missing)"
    if record.sha256 != part.sha256:
        return False, (f"{job.job_name} loaded other content (sha256 {record.sha256[:12]}, this run's "
                       f"{part.sha256[:12]})")
    return True, f"{job.job_name} already loaded this content (sha256 {part.sha256[:12]})"


def decide_import(
    dataset: str,
    history: list[PastImport],
    training_date: dt.date,
    full: SnapshotPart,
    increment: SnapshotPart | None,
    policy: ImportPolicy,
    holdout: dict[str, str],
    load_record: Callable[[str], ImportRecord | None],
    force_full: bool = False,
) -> ImportDecision:
    """The import of `dataset` for `training_date`, given its import jobs (`history`, none in flight).

    `increment` is None for datasets imported FULL only (items, users)."""
    base = import_base_name(dataset, training_date)
    active = sorted((job for job in history if job.status == ACTIVE), key=lambda job: job.landed)
    newest = active[-1] if active else None

    def fresh_full(reason: str) -> ImportDecision:
        return ImportDecision(FULL, reason, full)

    # A re-run of the day: its earlier import is resumed only if it is what the datasets hold now.
    if newest is not None and attempt_number(base, newest.job_name) is not None:
        part = increment if newest.import_mode == INCREMENTAL else full
        if part is None:
            same, why = False, f"{newest.job_name} was an INCREMENTAL import into a dataset imported FULL"
        else:
            same, why = _same_content(load_record(newest.job_name), newest, part)
        if same and not (force_full and newest.import_mode == INCREMENTAL):
            return ImportDecision(newest.import_mode, f"resumed: {why}", part, resume=newest)
        if force_full:
            return fresh_full(f"run config import_mode: FULL (the day's {newest.job_name} was INCREMENTAL)")
        return fresh_full(f"{why}: a new FULL import replaces it (appending again would duplicate rows)")

    if increment is None:
        if newest is not None:
            # A catalogue that did not change since the last import is not paid for again.
            same, why = _same_content(load_record(newest.job_name), newest, full)
            if same and newest.import_mode == FULL:
                return ImportDecision(FULL, f"unchanged: {why}", full, resume=newest)
        return fresh_full(f"{dataset} is imported FULL: the snapshot is the whole table, and FULL drops what "
                          "the product DB deleted")
    if force_full:
        return fresh_full("run config import_mode: FULL")
    if newest is None:
        return fresh_full("no import into the dataset yet (Personalize's first import into a dataset is FULL)")
    fulls = [job for job in active if job.import_mode == FULL and job.training_date is not None]
    if not fulls:
        return fresh_full("no FULL import of the platform's in the dataset yet")
    last_full = fulls[-1]
    later = [job for job in active if job.landed >= last_full.landed and job.training_date is not None
             and job.training_date >= training_date]
    if newest.training_date is None:
        return fresh_full(f"the dataset's newest import {newest.job_name} is not the platform's: a FULL import "
                          "makes its content known again")
    if later:
        return fresh_full(
            f"the dataset already holds data imported for {max(job.training_date for job in later)} "
            f"({later[-1].job_name}): an INCREMENTAL import would train {training_date} on later days and on "
            "its held-out users' targets")
    if newest.training_date != training_date - dt.timedelta(days=1):
        missing_from = newest.training_date + dt.timedelta(days=1)
        return fresh_full(f"the last import was for {newest.training_date}: days {missing_from}.."
                          f"{training_date - dt.timedelta(days=1)} never reached the dataset")
    full_record = load_record(last_full.job_name)
    if full_record is None or full_record.holdout != holdout:
        was = "unrecorded" if full_record is None else full_record.holdout
        return fresh_full(f"the holdout settings of the last FULL import {last_full.job_name} ({was}) are not "
                          f"today's ({holdout}): rows of users held out now may be in it")
    due = policy.full_due(training_date, last_full.training_date)
    if due:
        return fresh_full(f"FULL import due: {due.replace('FULL one', 'FULL import')}")
    if increment.rows < MIN_INCREMENTAL_IMPORT_RECORDS:
        short = (f"{training_date} brings {increment.rows:,} new interactions, fewer than the "
                 f"{MIN_INCREMENTAL_IMPORT_RECORDS:,} an INCREMENTAL import needs")
        if policy.incremental_below_minimum == "skip":
            return ImportDecision(SKIPPED, f"{short}; imports.incremental_below_minimum: skip (the datasets keep "
                                           "what they hold; the next import is FULL)", None)
        return fresh_full(f"{short}; imports.incremental_below_minimum: full")
    return ImportDecision(INCREMENTAL, f"{increment.rows:,} interactions of {training_date} appended to the FULL "
                                       f"import of {last_full.training_date} and the days since", increment)
