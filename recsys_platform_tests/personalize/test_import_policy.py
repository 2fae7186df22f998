"""The import and training policies: FULL, INCREMENTAL (or SKIPPED) imports and FULL / UPDATE trainings,
each with its reason; a re-run resumes only what loaded (or trained on) the same data.

The decisions are pure functions of Personalize's job listings, tested here rule by rule; the chain test
below runs them through boto3 against the local Personalize."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pytest
from dagster import DagsterInstance

from recsys_platform.defs.personalize.handoffs import SnapshotPart
from recsys_platform.defs.personalize.import_policy import (
    ImportRecord,
    PastImport,
    decide_import,
    holdout_settings,
)
from recsys_platform.defs.personalize.personalize_setup import Cadence, ImportPolicy, SolutionSpec, load_setup
from recsys_platform.defs.personalize.solution_version import PastVersion, decide_training_mode
from recsys_platform_tests.personalize.chain import chain_assets, metadata, run_chain, with_setup
from recsys_platform_tests.personalize.synthetic_shop import fill_warehouse, synthetic_interactions

E = dt.date(2026, 2, 28)
HOLDOUT = holdout_settings("recsys-holdout", 10, 7)
UTC = dt.timezone.utc
FULL_PART = SnapshotPart("s3://lake/full.csv", "full.csv", 50_000, "f" * 64, dt.date(2025, 12, 1), E)
INCREMENT = SnapshotPart("s3://lake/inc.csv", "inc.csv", 1_500, "1" * 64, E, E)
POLICY = ImportPolicy(full_every_days=7)


def job(name: str, mode: str = "FULL", day_offset: int = 0, status: str = "ACTIVE") -> PastImport:
    """A job listed by ListDatasetImportJobs; `day_offset` orders them (landed that many days after E-30)."""
    landed = dt.datetime(2026, 1, 29, tzinfo=UTC) + dt.timedelta(days=day_offset)
    day = None
    if name.startswith("recsys-interactions-"):
        day = dt.datetime.strptime(name.split("-")[2], "%Y%m%d").date()
    return PastImport(name, f"arn:{name}", status, mode, landed, landed, day)


def records(**by_name) -> callable:
    def load(name):
        return by_name.get(name)
    return load


def full_record(name: str, holdout=HOLDOUT, sha="f" * 64) -> ImportRecord:
    return ImportRecord(name, "interactions", "s3://lake/x.csv", "FULL", sha, 50_000, E, holdout=holdout)


def decide(history, increment=INCREMENT, policy=POLICY, load=None, **kwargs):
    return decide_import("interactions", history, E, FULL_PART, increment, policy, HOLDOUT,
                         load or records(**{"recsys-interactions-20260225": full_record("recsys-interactions-20260225")}),
                         **kwargs)


# A FULL import three days ago, then the two days since: today may be INCREMENTAL.
STEADY = [job("recsys-interactions-20260225", "FULL", 27), job("recsys-interactions-20260226", "INCREMENTAL", 28),
          job("recsys-interactions-20260227", "INCREMENTAL", 29)]


def test_incremental_between_full_imports():
    decision = decide(STEADY)
    assert decision.mode == "INCREMENTAL" and decision.part == INCREMENT and decision.resume is None
    assert decision.reason == ("1,500 interactions of 2026-02-28 appended to the FULL import of 2026-02-25 and "
                               "the days since")


@pytest.mark.parametrize("history, load, expected", [
    ([], None, "no import into the dataset yet (Personalize's first import into a dataset is FULL)"),
    ([job("manual-import", "FULL", 29)], None, "no FULL import of the platform's in the dataset yet"),
    ([*STEADY, job("manual-import", "INCREMENTAL", 30)], None,
     "the dataset's newest import manual-import is not the platform's"),
    (STEADY[:2], None, "the last import was for 2026-02-26: days 2026-02-27..2026-02-27 never reached the dataset"),
    ([*STEADY, job("recsys-interactions-20260302", "INCREMENTAL", 30)], None,
     "the dataset already holds data imported for 2026-03-02 (recsys-interactions-20260302): an INCREMENTAL "
     "import would train 2026-02-28 on later days and on its held-out users' targets"),
    (STEADY, records(), "the holdout settings of the last FULL import recsys-interactions-20260225 (unrecorded)"),
    (STEADY, records(**{"recsys-interactions-20260225": full_record(
        "recsys-interactions-20260225", holdout_settings("another-seed", 10, 7))}),
     "rows of users held out now may be in it"),
])
def test_full_when_an_increment_would_not_keep_the_datasets_right(history, load, expected):
    decision = decide(history, load=load)
    assert decision.mode == "FULL" and decision.part == FULL_PART
    assert expected in decision.reason


def test_full_by_the_cadence():
    weekly = decide(STEADY, policy=ImportPolicy(full_every_days=3))
    assert weekly.mode == "FULL"
    assert weekly.reason == ("FULL import due: the last FULL import was for 2026-02-25, 3 day(s) before 2026-02-28 "
                             "(full_every_days: 3)")
    saturday = decide(STEADY, policy=ImportPolicy(full_every_days=7, full_on_weekdays=(5,)))
    assert saturday.mode == "FULL" and "2026-02-28 is a Saturday (full_on_weekdays)" in saturday.reason
    forced = decide(STEADY, force_full=True)
    assert forced.mode == "FULL" and forced.reason == "run config import_mode: FULL"


def test_below_the_incremental_minimum_full_or_skip():
    small = SnapshotPart("s3://lake/inc.csv", "inc.csv", 999, "2" * 64, E, E)
    full = decide(STEADY, increment=small)
    assert full.mode == "FULL" and full.reason == (
        "2026-02-28 brings 999 new interactions, fewer than the 1,000 an INCREMENTAL import needs; "
        "imports.incremental_below_minimum: full")
    skipped = decide(STEADY, increment=small, policy=ImportPolicy(incremental_below_minimum="skip"))
    assert skipped.mode == "SKIPPED" and skipped.part is None
    assert "incremental_below_minimum: skip (the datasets keep what they hold; the next import is FULL)" in skipped.reason
    # The skipped day is missing from the datasets: the next day's import is FULL.
    next_day = decide_import("interactions", STEADY, E + dt.timedelta(days=1), FULL_PART, INCREMENT, POLICY, HOLDOUT,
                             records(**{"recsys-interactions-20260225": full_record("recsys-interactions-20260225")}))
    assert next_day.mode == "FULL" and "days 2026-02-28..2026-02-28 never reached the dataset" in next_day.reason


def test_a_rerun_resumes_only_the_same_content():
    todays = job("recsys-interactions-20260228", "INCREMENTAL", 30)
    history = [*STEADY, todays]
    same = records(**{
        "recsys-interactions-20260225": full_record("recsys-interactions-20260225"),
        "recsys-interactions-20260228": ImportRecord("recsys-interactions-20260228", "interactions", "s3://lake/old.csv",
                                                     "INCREMENTAL", INCREMENT.sha256, 1_500, E),
    })
    resumed = decide(history, load=same)
    assert resumed.mode == "INCREMENTAL" and resumed.resume == todays and resumed.reason.startswith("resumed: ")
    changed = SnapshotPart("s3://lake/inc2.csv", "inc2.csv", 1_600, "3" * 64, E, E)
    fresh = decide(history, increment=changed, load=same)
    assert fresh.mode == "FULL" and fresh.resume is None and fresh.part == FULL_PART
    assert fresh.reason == ("recsys-interactions-20260228 loaded other content (sha256 111111111111, this run's "
                            "333333333333): a new FULL import replaces it (appending again would duplicate rows)")
    unrecorded = decide(history, load=records())
    assert unrecorded.mode == "FULL" and "no record of what recsys-interactions-20260228 loaded" in unrecorded.reason
    # The day's import is not what the datasets hold any more (a later day was imported since): FULL.
    later = decide([*history, job("recsys-interactions-20260301", "INCREMENTAL", 31)], load=same)
    assert later.mode == "FULL" and "already holds data imported for 2026-03-01" in later.reason


def test_items_and_users_are_imported_full_and_resumed_by_content():
    items_part = SnapshotPart("s3://lake/items.csv", "items.csv", 60, "a" * 64)
    first = decide_import("items", [], E, items_part, None, POLICY, HOLDOUT, records())
    assert first.mode == "FULL" and first.reason.startswith("items is imported FULL: the snapshot is the whole table")
    todays = PastImport("recsys-items-20260228", "arn:i", "ACTIVE", "FULL", dt.datetime(2026, 3, 1, tzinfo=UTC),
                        dt.datetime(2026, 3, 1, tzinfo=UTC), None)
    record = ImportRecord("recsys-items-20260228", "items", "s3://lake/old-items.csv", "FULL", "a" * 64, 60, E)
    again = decide_import("items", [todays], E, items_part, None, POLICY, HOLDOUT,
                          records(**{"recsys-items-20260228": record}))
    assert again.resume == todays
    # The next day, an unchanged catalogue is not imported again; a changed one is.
    tomorrow = E + dt.timedelta(days=1)
    unchanged = decide_import("items", [todays], tomorrow, items_part, None, POLICY, HOLDOUT,
                              records(**{"recsys-items-20260228": record}))
    assert unchanged.resume == todays and unchanged.reason.startswith(
        "unchanged: recsys-items-20260228 already loaded this content (sha256 aaaaaaaaaaaa)")
    changed = SnapshotPart("s3://lake/items2.csv", "items2.csv", 61, "b" * 64)
    fresh = decide_import("items", [todays], tomorrow, changed, None, POLICY, HOLDOUT,
                          records(**{"recsys-items-20260228": record}))
    assert fresh.resume is None and fresh.part == changed


def version(name: str, mode: str = "FULL", day: dt.date | None = None, status: str = "ACTIVE") -> PastVersion:
    return PastVersion(f"arn:{name}", name, status, mode, dt.datetime(2026, 2, 1, tzinfo=UTC), day)


UPDATABLE = SolutionSpec("s", "arn:aws:personalize:::recipe/aws-user-personalization")


def test_training_mode_by_recipe_and_cadence():
    v2 = SolutionSpec("s", "arn:aws:personalize:::recipe/aws-user-personalization-v2")
    assert decide_training_mode(v2, [version("recsys-20260227", day=E - dt.timedelta(days=1))], E, Cadence()) == (
        "FULL", "aws-user-personalization-v2 trains FULL only (UPDATE: aws-user-personalization, aws-hrnn-coldstart)")
    assert decide_training_mode(UPDATABLE, [], E, Cadence()) == (
        "FULL", "no ACTIVE FULL version of s yet (UPDATE refreshes one)")
    recent = [version("recsys-20260225", day=dt.date(2026, 2, 25)), version("recsys-20260226", "UPDATE", dt.date(2026, 2, 26))]
    mode, reason = decide_training_mode(UPDATABLE, recent, E, Cadence(full_every_days=7))
    assert mode == "UPDATE" and "the last FULL version recsys-20260225 is 3 day(s) old" in reason
    mode, reason = decide_training_mode(UPDATABLE, recent, E, Cadence(full_every_days=3))
    assert mode == "FULL" and reason.startswith("FULL training due: the last FULL version was for 2026-02-25")
    assert decide_training_mode(UPDATABLE, recent, E, Cadence(), override="FULL")[0] == "FULL"
    with pytest.raises(ValueError, match="uses aws-user-personalization-v2"):
        decide_training_mode(v2, recent, E, Cadence(), override="UPDATE")
    failed_full = [version("recsys-20260225", status="CREATE FAILED")]
    with pytest.raises(ValueError, match="needs an ACTIVE FULL version of s"):
        decide_training_mode(UPDATABLE, failed_full, E, Cadence(), override="UPDATE")


# ---- through the local Personalize ----------------------------------------------------------------------

D = E - dt.timedelta(days=1)
TZ = ZoneInfo("Asia/Seoul")


def _on_day(table: pa.Table, day: dt.date) -> pa.Table:
    """The same interactions, all on `day` (property-local), keeping each one's time of day."""
    midnight = int(dt.datetime.combine(day, dt.time(), tzinfo=TZ).timestamp())
    seconds = [midnight + stamp % 86_400 for stamp in table["TIMESTAMP"].to_pylist()]
    return table.set_column(table.schema.get_field_index("event_date"), "event_date",
                            pa.array([day] * table.num_rows, pa.date32())).set_column(
        table.schema.get_field_index("TIMESTAMP"), "TIMESTAMP", pa.array(seconds, pa.int64()))


def _append(warehouse_path, rows: pa.Table) -> None:
    with duckdb.connect(str(warehouse_path)) as con:
        con.register("more", rows)
        con.execute("INSERT INTO recsys.interactions SELECT * FROM more")


def _held_out(user_id: str) -> bool:
    holdout = load_setup().holdout
    return int(hashlib.md5((holdout.seed + user_id).encode()).hexdigest()[:8], 16) % 100 < holdout.percent_users


def test_incremental_import_and_update_training_then_a_changed_day_gets_a_fresh_import_and_version(
        recsys_home, lake, personalize):
    base = synthetic_interactions()
    busy_day = _on_day(synthetic_interactions(n_events=1_500, seed=11), E)  # over the INCREMENTAL minimum
    warehouse = fill_warehouse(recsys_home, pa.concat_tables([base, busy_day]))
    # aws-user-personalization allows UPDATE trainings (the production v2 recipe does not).
    setup = with_setup(solution={"name": "recsys-platform-updatable",
                                 "recipe": "arn:aws:personalize:::recipe/aws-user-personalization"})
    chain = chain_assets(setup, campaign=False)
    instance = DagsterInstance.ephemeral()
    client = personalize.get_client()

    first = run_chain(chain, D.isoformat(), warehouse, lake, personalize, instance)
    imported = metadata(first, "personalize_dataset_import")
    assert imported["import_mode"] == "FULL" and imported["import_reason"].startswith("no import into the dataset yet")
    trained = metadata(first, "personalize_solution_version")
    assert trained["training_mode"] == "FULL" and trained["training_reason"].startswith("no ACTIVE FULL version")

    second = run_chain(chain, E.isoformat(), warehouse, lake, personalize, instance)
    imported = metadata(second, "personalize_dataset_import")
    snapshot = second.asset_value("personalize_interactions_csv")
    assert imported["import_mode"] == "INCREMENTAL", imported["import_reason"]
    assert imported["import_reason"].endswith("appended to the FULL import of 2026-02-27 and the days since")
    assert imported["interactions_data_location"] == snapshot.increment.uri
    assert imported["items_import_mode"] == "FULL" and imported["users_import_mode"] == "FULL"
    # The catalogue and the users did not change since the day before: their import of that day stands.
    assert imported["items_job_name"] == "recsys-items-20260227" and imported["items_resumed"] is True
    assert imported["users_reason"].startswith("unchanged: recsys-users-20260227 already loaded this content")
    job = client.describe_dataset_import_job(datasetImportJobArn=imported["interactions_job_arn"])["datasetImportJob"]
    assert job["importMode"] == "INCREMENTAL" and job["jobName"] == "recsys-interactions-20260228"
    # The increment is the training day alone, and none of its rows is a held-out user's.
    rows = list(csv.DictReader(io.StringIO(lake.read_text(snapshot.increment.key))))
    midnight = int(dt.datetime.combine(E, dt.time(), tzinfo=TZ).timestamp())
    assert len(rows) == snapshot.increment.rows == imported["interactions_rows_imported"] >= 1_000
    assert all(midnight <= int(r["TIMESTAMP"]) < midnight + 86_400 for r in rows)
    assert not [r for r in rows if _held_out(r["USER_ID"])]
    assert any(_held_out(u) for u in busy_day["USER_ID"].to_pylist())  # there were some to leave out
    trained = metadata(second, "personalize_solution_version")
    assert trained["training_mode"] == "UPDATE", trained["training_reason"]
    assert "UPDATE between FULL trainings" in trained["training_reason"]
    update = client.describe_solution_version(solutionVersionArn=trained["solution_version_arn"])["solutionVersion"]
    assert update["trainingMode"] == "UPDATE"

    # GA4 re-exported the day with late events: the re-run's snapshot differs from what the day imported.
    _append(recsys_home / "warehouse.duckdb", _on_day(synthetic_interactions(n_events=60, seed=12), E))
    third = run_chain(chain, E.isoformat(), warehouse, lake, personalize, instance)
    reimported = metadata(third, "personalize_dataset_import")
    assert reimported["import_mode"] == "FULL" and reimported["interactions_resumed"] is False
    assert reimported["interactions_job_name"] == "recsys-interactions-20260228-a2"
    assert reimported["import_reason"].startswith("recsys-interactions-20260228 loaded other content (sha256 ")
    assert reimported["interactions_data_location"] == third.asset_value("personalize_interactions_csv").uri
    retrained = metadata(third, "personalize_solution_version")
    assert retrained["name"] == "recsys-20260228-a2" and retrained["resumed"] is False
    assert "before the datasets last changed" in retrained["training_reason"]
    assert retrained["solution_version_arn"] != trained["solution_version_arn"]

    # The same data again: the snapshots are new objects with the same content, so everything resumes.
    fourth = run_chain(chain, E.isoformat(), warehouse, lake, personalize, instance)
    again = metadata(fourth, "personalize_dataset_import")
    assert all(again[f"{key}_resumed"] for key in ("interactions", "items", "users"))
    assert again["interactions_job_name"] == "recsys-interactions-20260228-a2"
    assert again["interactions_data_location"] == reimported["interactions_data_location"]  # the job's, not this run's
    assert fourth.asset_value("personalize_interactions_csv").uri != again["interactions_data_location"]
    assert metadata(fourth, "personalize_solution_version")["name"] == "recsys-20260228-a2"
    dataset_arn = job["datasetArn"]
    assert len(client.list_dataset_import_jobs(datasetArn=dataset_arn)["datasetImportJobs"]) == 3

    # A day skipped (2026-03-01 never imported): the next import is FULL, saying which days are missing.
    snapshots_and_import = [a for a in chain if "personalize_solution_version" not in
                            {k.to_user_string() for k in a.keys}]
    gap = run_chain(snapshots_and_import, "2026-03-02", warehouse, lake, personalize, instance)
    assert metadata(gap, "personalize_dataset_import")["import_reason"] == (
        "the last import was for 2026-02-28: days 2026-03-01..2026-03-01 never reached the dataset")
    # Re-training an earlier day on datasets that hold a later one: FULL, the holdout would leak otherwise.
    earlier = run_chain(snapshots_and_import, E.isoformat(), warehouse, lake, personalize, instance)
    assert metadata(earlier, "personalize_dataset_import")["import_mode"] == "FULL"
    assert "already holds data imported for 2026-03-02" in metadata(earlier, "personalize_dataset_import")["import_reason"]
