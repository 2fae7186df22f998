"""kill -9 inside each Personalize stage of a training day, then the next run of the same partition.

The chain runs as users run it: a run worker in a child process, the code location's executor (Dagster's
multiprocess executor, one process per step), the repository's dagster.yaml, and the local Personalize as
its own process (`recsys-platform serve --port 0`), reached over HTTP. Each stage is killed on a day of its
own, so the job it starts is fresh; the next run re-executes the failed run from its failure, as an
operator does in the UI. Personalize is asked through boto3 what exists: one interactions import and one
solution version per day, at most one import of each dataset per day, one campaign, never an `-a2` attempt.

One story, one test: the server, the run worker and the warehouse are set up once.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import boto3

from recsys_platform.lib.lake import LocalLake
from recsys_platform_tests.faults import harness
from recsys_platform_tests.personalize.synthetic_shop import fill_warehouse, synthetic_interactions

JOB = "personalize_retraining_job"
DAYS = {"snapshot": "2026-02-25", "import": "2026-02-26", "training": "2026-02-27", "campaign": "2026-02-28"}
CAMPAIGN = "recsys-platform"
# Short polls so the waits are reachable (and quick); the stand-in holds each job PENDING this long.
STEP_DELAY = 0.4
FAST = {"poll_seconds": 0.2}


def run_config(override: str = "none") -> dict:
    return {
        "ops": {"personalize_dataset_import": {"config": FAST},
                "personalize_solution_version": {"config": FAST},
                "personalize_campaign": {"config": {**FAST, "override": override}}},
    }


def compact(day: str) -> str:
    return day.replace("-", "")


def open_file_under(pid: int, folder: Path) -> Path | None:
    """A file under `folder` that process `pid` has open (a lake object being staged), if any."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = Path(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                continue
            if folder in target.parents and target.name == "object":
                return target
    except FileNotFoundError:
        return None
    return None


class Personalize:
    """What the local Personalize holds, asked through boto3 as an operator would."""

    def __init__(self, endpoint_url: str):
        self.client = boto3.client("personalize", endpoint_url=endpoint_url, region_name="us-east-1",
                                   aws_access_key_id="local", aws_secret_access_key="local")

    def _group(self) -> str | None:
        groups = [g for g in self.client.list_dataset_groups()["datasetGroups"] if g["name"] == "recsys-platform"]
        return groups[0]["datasetGroupArn"] if groups else None

    def import_jobs(self) -> list[dict]:
        group = self._group()
        if group is None:
            return []
        jobs = []
        for dataset in self.client.list_datasets(datasetGroupArn=group)["datasets"]:
            jobs += self.client.list_dataset_import_jobs(datasetArn=dataset["datasetArn"],
                                                         maxResults=100)["datasetImportJobs"]
        return jobs

    def solution_arn(self) -> str | None:
        group = self._group()
        solutions = [s for s in self.client.list_solutions(datasetGroupArn=group)["solutions"]
                     if s["name"] == "recsys-platform"] if group else []
        return solutions[0]["solutionArn"] if solutions else None

    def solution_versions(self) -> list[dict]:
        solution = self.solution_arn()
        if solution is None:
            return []
        return [self.client.describe_solution_version(solutionVersionArn=v["solutionVersionArn"])["solutionVersion"]
                for v in self.client.list_solution_versions(solutionArn=solution, maxResults=100)["solutionVersions"]]

    def campaigns(self) -> list[dict]:
        solution = self.solution_arn()
        if solution is None:
            return []
        return [self.client.describe_campaign(campaignArn=c["campaignArn"])["campaign"]
                for c in self.client.list_campaigns(solutionArn=solution)["campaigns"]]

    def batch_inference_jobs(self) -> list[dict]:
        return self.client.list_batch_inference_jobs(maxResults=100)["batchInferenceJobs"]

    def job_counts(self) -> dict[str, int]:
        return {"import_jobs": len(self.import_jobs()), "solution_versions": len(self.solution_versions()),
                "campaigns": len(self.campaigns()), "batch_inference_jobs": len(self.batch_inference_jobs())}

    def repeated_attempts(self) -> list[str]:
        """Jobs that are a later attempt of a day's job (`...-a2`): a retried step started anew instead of
        resuming the job it had started."""
        names = ([j["jobName"] for j in self.import_jobs()] + [v.get("name", "") for v in self.solution_versions()]
                 + [j["jobName"] for j in self.batch_inference_jobs()])
        return [name for name in names if re.search(r"-a\d+$", name)]


def assert_one_job_each_per_day(personalize: Personalize, days: list[str]) -> None:
    """Each day has one interactions import and one solution version, at most one import of the other
    datasets (an unchanged catalogue may be skipped), no second attempt of anything, one campaign."""
    imports = Counter(j["jobName"] for j in personalize.import_jobs())
    for day in days:
        assert imports[f"recsys-interactions-{compact(day)}"] == 1, imports
    assert all(n == 1 for n in imports.values()), imports
    versions = Counter(v["name"] for v in personalize.solution_versions())
    assert versions == Counter(f"recsys-{compact(day)}" for day in days), versions
    assert [c["name"] for c in personalize.campaigns()] == [CAMPAIGN]
    batch = Counter(j["jobName"] for j in personalize.batch_inference_jobs())
    assert all(n == 1 for n in batch.values()), batch
    assert not personalize.repeated_attempts(), personalize.repeated_attempts()


def lake_problems(lake: LocalLake) -> list[str]:
    """Objects the lake lists that do not read back whole (a CSV snapshot ends with a newline), and copies
    in flight (`.partial-*`) left in the bucket folder."""
    problems = [f"{key} is cut short" for key in lake.list()
                if key.endswith(".csv") and not lake.read_bytes(key).endswith(b"\n")]
    bucket = Path(lake.root) / lake.bucket
    return problems + ([str(p) for p in bucket.rglob(".*.partial-*")] if bucket.exists() else [])


def snapshots(lake: LocalLake) -> dict[str, bytes]:
    """The immutable snapshot objects and their bytes (hand-offs are replaced by design, so left out)."""
    return {key: lake.read_bytes(key) for key in lake.list("personalize/")}


def lost_objects(before: dict[str, bytes], after: dict[str, bytes]) -> int:
    return sum(1 for key, body in before.items() if after.get(key) != body)


def kill_snapshot(runner, run_id, personalize, day, tmp, lake):
    # Killed while the window's CSV is being written: the step holds the staging file open (its header and
    # rows in the file or still in the writer's buffer) and has stored nothing yet. The whole write of the
    # test's small window takes a few milliseconds, so any moment the file is open counts (waiting for bytes
    # on disk as well missed it under load).
    pid = runner.step_pid(run_id, "personalize_interactions_csv")

    window_key = f"personalize/interactions/{day}/{run_id}.csv"

    def writing() -> int | None:
        staged = open_file_under(pid, tmp)
        if staged is None or lake.exists(window_key):
            return None
        try:
            return staged.stat().st_size
        except FileNotFoundError:  # staged and stored meanwhile
            return None

    staged_bytes = harness.wait_until(writing, 120, "the interactions CSV to be staged", interval=0.002)
    runner.kill_step(pid)
    # (On a busy machine the copy into the lake may have finished between the look and the kill.)
    when = "just after it was stored" if lake.exists(window_key) else f"{staged_bytes} bytes staged"
    return f"personalize_interactions_csv, writing the window's CSV ({when})"


def kill_in_wait(step: str, text: str, status_of):
    def kill(runner, run_id, personalize, day, tmp, lake):
        pid = runner.step_pid(run_id, step)
        runner.wait_for_log(run_id, step, text)
        runner.kill_step(pid)
        return f"{step}, waiting ({status_of(personalize, day)} at the kill)"

    return kill


def import_status(personalize, day):
    jobs = {j["jobName"]: j["status"] for j in personalize.import_jobs()}
    return f"import recsys-interactions-{compact(day)} {jobs.get(f'recsys-interactions-{compact(day)}')}"


def training_status(personalize, day):
    versions = {v["name"]: v["status"] for v in personalize.solution_versions()}
    return f"solution version recsys-{compact(day)} {versions.get(f'recsys-{compact(day)}')}"


def campaign_status(personalize, day):
    [campaign] = personalize.campaigns()
    return f"campaign update {(campaign.get('latestCampaignUpdate') or {}).get('status')}"


KILLS = {
    "snapshot": kill_snapshot,
    "import": kill_in_wait("personalize_dataset_import", "dataset import job recsys-interactions-", import_status),
    "training": kill_in_wait("personalize_solution_version", "solution version recsys-", training_status),
    "campaign": kill_in_wait("personalize_campaign", "campaign recsys-platform: UPDATE", campaign_status),
}


def test_a_day_killed_at_each_personalize_stage_starts_no_second_job_and_the_next_run_finishes(
        tmp_path, tmp_path_factory, monkeypatch):
    home = tmp_path / "recsys"
    fill_warehouse(home, synthetic_interactions())
    lake = LocalLake(root=str(home / "lake"))
    with harness.personalize_server(home, tmp_path / "serve.log", step_delay=STEP_DELAY) as server, \
            harness.runner(tmp_path / "work", home, RECSYS_PERSONALIZE_ENDPOINT_URL=server.endpoint_url) as runner:
        personalize = Personalize(server.endpoint_url)
        tmp = runner.tmp
        trained: list[str] = []
        for stage, kill in KILLS.items():
            day = DAYS[stage]
            # The campaign stage moves the campaign: the operator's override makes the move certain whatever
            # the gate would say of two models trained on nearly the same data.
            config = run_config("promote" if stage == "campaign" else "none")
            stored = snapshots(lake)
            attempt = runner.submit(JOB, day, run_config=config)
            run_id = runner.run_id(attempt)
            injected_at = kill(runner, run_id, personalize, day, tmp, lake)
            killed = runner.result()
            assert not killed["success"], f"the run survived a kill in {stage}"
            assert "ChildProcessCrashException" in runner.failure_messages(run_id)
            # Whatever the killed step was writing is not in the lake: every object listed reads back whole.
            assert not lake_problems(lake), lake_problems(lake)

            recovered = runner.run(JOB, day, from_failure_of=run_id, run_config=config)
            assert recovered["success"], runner.failure_messages(recovered["run_id"])
            trained.append(day)
            assert_one_job_each_per_day(personalize, trained)
            assert not lake_problems(lake), lake_problems(lake)
            lost = lost_objects(stored, snapshots(lake))
            counts = personalize.job_counts()
            # assert_one_job_each_per_day passed: no job was started twice.
            duplicates = len(personalize.repeated_attempts()) + counts["campaigns"] - 1
            if stage == "campaign":
                # The update the killed run asked for went through once, and the campaign serves the day's version.
                [campaign] = personalize.campaigns()
                [version] = [v for v in personalize.solution_versions() if v["name"] == f"recsys-{compact(day)}"]
                assert campaign["solutionVersionArn"] == version["solutionVersionArn"]
                assert (campaign.get("latestCampaignUpdate") or {}).get("status", "ACTIVE") == "ACTIVE"
            harness.record_fault(tmp_path_factory, f"kill -9: {stage}", injected_at,
                                 "run failed (step SIGKILL); re-execution from failure resumed the job it had "
                                 "started and succeeded; no second job", lost, duplicates,
                                 recovered["seconds"])
            assert (lost, duplicates) == (0, 0)
