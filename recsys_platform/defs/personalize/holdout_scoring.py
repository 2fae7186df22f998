"""Scoring solution versions on the platform's own holdout, through batch inference.

The holdout (held-out users' purchases in the training window's last days, never in training data)
is read from the warehouse. Each solution version answers for those users through a batch inference
job (`CreateBatchInferenceJob`, input and output in the lake), and the platform scores the answers
with the metrics module, so every version is judged on the same targets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recsys_platform.defs.personalize.handoffs import TrainingWindow
from recsys_platform.defs.personalize.job_waiting import (
    WaitPolicy,
    attempt_number,
    list_all,
    new_attempt_name,
    wait_until_active,
)
from recsys_platform.defs.personalize.personalize_setup import PersonalizeSetup
from recsys_platform.defs.personalize.snapshots import window_params
from recsys_platform.lib.lake import LakeResource
from recsys_platform.lib.sql_files import read_sql
from recsys_platform.lib.warehouse.interface import Warehouse
from recsys_platform.shared.personalize_facts import is_failed

if TYPE_CHECKING:  # numpy is imported where a holdout is scored, not when definitions load
    from recsys_platform.shared.offline_metrics import UserScores


class EmptyHoldoutError(ValueError):
    """No held-out user has a target event in the holdout period, so no version can be scored."""


def held_out(warehouse: Warehouse, setup: PersonalizeSetup, user_ids: list[str]) -> set[str]:
    """Which of `user_ids` are held-out users: the SQL holdout predicate itself (IS_HELD_OUT), so the
    real-time path (event replay, the demo) leaves out exactly the users training leaves out."""
    if not user_ids:
        return set()
    rows = warehouse.query(read_sql(__file__, "personalize_held_out_users.sql"), {
        "user_ids": list(user_ids), "holdout_seed": setup.holdout.seed,
        "holdout_percent": setup.holdout.percent_users,
    })
    return set(rows.column("USER_ID").to_pylist())


@dataclass(frozen=True)
class Holdout:
    targets: dict[str, list[str]]  # USER_ID -> items bought in the holdout period
    input_key: str  # lake key of the batch inference input (JSON lines of {"userId": ...})


@dataclass(frozen=True)
class HoldoutScore:
    solution_version_arn: str
    metrics: dict[str, float]
    per_user: UserScores
    batch_inference_job_arn: str

    def interval(self, metric: str, seed: int = 0) -> tuple[float, float]:
        from recsys_platform.shared.offline_metrics import bootstrap_interval

        return bootstrap_interval(self.per_user.values[metric], seed=seed)


def iter_holdout_rows(warehouse: Warehouse, window: TrainingWindow, setup: PersonalizeSetup):
    """The holdout's (USER_ID, ITEM_ID, TIMESTAMP) rows in Arrow batches."""
    params = {**window_params(window, setup), "target_event_type": setup.holdout.target_event_type}
    return warehouse.iter_batches(read_sql(__file__, "personalize_purchase_holdout.sql"), params)


def load_holdout(warehouse: Warehouse, lake: LakeResource, window: TrainingWindow, setup: PersonalizeSetup,
                 run_id: str) -> Holdout:
    """The day's holdout targets, and the batch inference input for its users written to the lake."""
    targets: dict[str, list[str]] = {}
    for batch in iter_holdout_rows(warehouse, window, setup):
        for user, item in zip(batch.column("USER_ID").to_pylist(), batch.column("ITEM_ID").to_pylist()):
            items = targets.setdefault(user, [])
            if item not in items:
                items.append(item)
    if not targets:
        raise EmptyHoldoutError(
            f"the holdout of {window.training_date} is empty: no held-out user has a "
            f"{setup.holdout.target_event_type} event since {window.holdout_start}"
        )
    key = f"personalize/holdout/{window.training_date.isoformat()}/{run_id}/users.json"
    lake.put_text(key, "".join(json.dumps({"userId": user}) + "\n" for user in sorted(targets)))
    return Holdout(targets, key)


def _version_id(solution_version_arn: str) -> str:
    return solution_version_arn.rsplit("/", 1)[-1][:16]


def run_batch_inference(client, lake: LakeResource, solution_version_arn: str, holdout: Holdout, base_name: str,
                        role_arn: str, num_results: int, policy: WaitPolicy,
                        log: Callable[[str], None] | None = None,
                        filter_arn: str | None = None) -> tuple[str, dict[str, list[str]]]:
    """Starts (or resumes) the batch inference job `base_name` and returns (jobArn, userId -> items).

    With `filter_arn`, each user's recommendations are filtered as GetRecommendations with that filter
    would filter them. A job of the day that answered with another filter (or none) is not resumed."""
    jobs = list_all(client, "list_batch_inference_jobs", "batchInferenceJobs", solutionVersionArn=solution_version_arn)
    name, resumed = None, False
    for job in sorted((j for j in jobs if attempt_number(base_name, j["jobName"]) is not None
                       and not is_failed(j["status"])), key=lambda j: attempt_number(base_name, j["jobName"])):
        described = client.describe_batch_inference_job(batchInferenceJobArn=job["batchInferenceJobArn"])[
            "batchInferenceJob"]
        if described.get("filterArn") == filter_arn and described.get("numResults") == num_results:
            name, arn, resumed = job["jobName"], job["batchInferenceJobArn"], True
            break
    if name is None:
        name = new_attempt_name(base_name, [j["jobName"] for j in jobs])
    output_key = f"personalize/batch-inference/{name}/"
    if not resumed:
        params = {"filterArn": filter_arn} if filter_arn else {}
        arn = client.create_batch_inference_job(
            jobName=name,
            solutionVersionArn=solution_version_arn,
            numResults=num_results,
            jobInput={"s3DataSource": {"path": lake.uri(holdout.input_key)}},
            jobOutput={"s3DataDestination": {"path": lake.folder_uri(output_key)}},
            roleArn=role_arn,
            **params,
        )["batchInferenceJobArn"]
    job = wait_until_active(
        lambda: client.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"],
        f"batch inference job {name}", policy, log=log,
    )
    output_prefix = lake.key_from_uri(job["jobOutput"]["s3DataDestination"]["path"])
    input_name = holdout.input_key.rsplit("/", 1)[-1]
    return arn, parse_batch_output(lake.read_text(f"{output_prefix.rstrip('/')}/{input_name}.out"))


def parse_batch_output(text: str) -> dict[str, list[str]]:
    """userId -> recommendedItems from Personalize's batch inference output lines (lines with errors skipped)."""
    recommended = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("output"):
            recommended[record["input"]["userId"]] = list(record["output"]["recommendedItems"])
    return recommended


def score_on_holdout(client, lake: LakeResource, solution_version_arn: str, holdout: Holdout, job_prefix: str,
                     role_arn: str, num_results: int, catalog_size: int, policy: WaitPolicy,
                     log: Callable[[str], None] | None = None, filter_arn: str | None = None) -> HoldoutScore:
    """Batch inference of one version for the holdout's users (filtered by `filter_arn`, as users get
    them), scored against the holdout's targets."""
    from recsys_platform.shared.offline_metrics import per_user_scores, personalize_metrics

    base_name = f"{job_prefix}-{_version_id(solution_version_arn)}"
    arn, recommended = run_batch_inference(
        client, lake, solution_version_arn, holdout, base_name, role_arn, num_results, policy, log, filter_arn
    )
    return HoldoutScore(
        solution_version_arn=solution_version_arn,
        metrics=personalize_metrics(recommended, holdout.targets, catalog_size),
        per_user=per_user_scores(recommended, holdout.targets),
        batch_inference_job_arn=arn,
    )
