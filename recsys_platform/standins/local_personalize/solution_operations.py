"""Solutions, solution versions (training) and their metrics."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Callable

import pyarrow as pa

from recsys_platform.standins.local_personalize import avro_schemas, dataset_data, model_training
from recsys_platform.standins.local_personalize.arns import make_arn, recipe_name
from recsys_platform.standins.local_personalize.errors import (
    InvalidInputException,
    LimitExceededException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
)
from recsys_platform.standins.local_personalize.job_runner import ACTIVE, JobContext, JobFailed, is_transient
from recsys_platform.standins.local_personalize.private_files import write_private
from recsys_platform.standins.local_personalize.resource_kinds import ResourceOperations, public
from recsys_platform.standins.local_personalize.tracked_events import EVENTS_FILE, read_lines
from recsys_platform.shared.personalize_facts import allows_update_training

DEFAULT_AUTO_TRAINING_SCHEDULE = "rate(7 days)"


class SolutionOperations(ResourceOperations):
    max_concurrent_trainings: int

    # ---- solutions -------------------------------------------------------------------------------

    def create_solution(self, params: dict, region: str) -> dict:
        group = self._get_active("dataset_group", params["datasetGroupArn"], "datasetGroupArn")
        if params.get("performAutoML"):
            raise InvalidInputException("performAutoML is not supported here: give recipeArn.")
        if params.get("performHPO"):
            raise InvalidInputException(
                "performHPO is not supported here: set algorithmHyperParameters instead."
            )
        if not params.get("recipeArn"):
            raise InvalidInputException("recipeArn is required when performAutoML is false.")
        recipe_name(params["recipeArn"])
        config = json.loads(json.dumps(params.get("solutionConfig") or {}))
        perform_auto_training = params.get("performAutoTraining", True)
        if perform_auto_training:
            auto_training = config.setdefault("autoTrainingConfig", {})
            auto_training.setdefault("schedulingExpression", DEFAULT_AUTO_TRAINING_SCHEDULE)
        record = {
            "name": params["name"],
            "solutionArn": make_arn(region, "solution", params["name"]),
            "datasetGroupArn": group["datasetGroupArn"],
            "recipeArn": params["recipeArn"],
            "performHPO": False,
            "performAutoML": False,
            "performAutoTraining": perform_auto_training,
            "performIncrementalUpdate": bool(params.get("performIncrementalUpdate", False)),
            "solutionConfig": config,
            "_region": region,
        }
        if params.get("eventType"):
            record["eventType"] = params["eventType"]
        model_training.check_recipe(model_training.training_settings(record))
        self._create("solution", record)
        return {"solutionArn": record["solutionArn"]}

    def describe_solution(self, params: dict, region: str) -> dict:
        answer = self._describe("solution", params["solutionArn"], "solutionArn")
        versions = self._in_use_by("solution_version", "solutionArn", params["solutionArn"])
        if versions:
            latest = max(versions, key=lambda r: r["creationDateTime"])
            answer["solution"]["latestSolutionVersion"] = public(
                latest, self.summary_fields["solution_version"]
            )
        return answer

    def list_solutions(self, params: dict, region: str) -> dict:
        return self._list_under("solution", region, params, "datasetGroupArn", "dataset-group")

    def delete_solution(self, params: dict, region: str) -> dict:
        arn = params["solutionArn"]
        with self.store.locked():
            record = self._get("solution", arn, "solutionArn")
            versions = self._in_use_by("solution_version", "solutionArn", arn)
            version_arns = {v["solutionVersionArn"] for v in versions}
            campaigns = [c for c in self.store.all("campaign") if c.get("solutionVersionArn") in version_arns]
            busy = is_transient(record.get("status")) or any(is_transient(v["status"]) for v in versions)
            if campaigns or busy:
                raise ResourceInUseException(
                    f"Solution {arn} is in use "
                    "(a campaign serves one of its versions, or a version is training)."
                )
            for version in versions:
                self.store.delete("solution_version", version["solutionVersionArn"])
                shutil.rmtree(self.model_path(version["solutionVersionArn"]).parent, ignore_errors=True)
            self.store.delete("solution", arn)
        return {}

    # ---- solution versions -----------------------------------------------------------------------

    def create_solution_version(self, params: dict, region: str) -> dict:
        solution = self._get_active("solution", params["solutionArn"], "solutionArn")
        mode = params.get("trainingMode") or "FULL"
        if mode == "AUTOTRAIN":
            raise InvalidInputException("trainingMode AUTOTRAIN is set by the service, not by a request.")
        with self.store.locked():
            versions = self.runner.recover(
                "solution_version",
                self._in_use_by("solution_version", "solutionArn", solution["solutionArn"]),
            )
            in_flight = [v for v in versions if is_transient(v["status"])]
            if in_flight:
                raise ResourceInUseException(
                    f"Solution {solution['solutionArn']} already has a version in progress: "
                    f"{in_flight[0]['solutionVersionArn']} ({in_flight[0]['status']})."
                )
            if mode == "UPDATE":
                if not allows_update_training(solution["recipeArn"]):
                    raise InvalidInputException(
                        f"trainingMode UPDATE is not available for {solution['recipeArn']}."
                    )
                if not any(v["status"] == ACTIVE for v in versions):
                    raise InvalidInputException(
                        "trainingMode UPDATE needs an ACTIVE solution version to update."
                    )
            if params.get("name") and any(v.get("name") == params["name"] for v in versions):
                raise ResourceAlreadyExistsException(
                    f"Solution {solution['solutionArn']} already has a version named {params['name']}."
                )
            training_now = [
                v for v in self.runner.recover("solution_version", self.store.all("solution_version"))
                if is_transient(v["status"]) and v.get("_region") == region
            ]
            if len(training_now) >= self.max_concurrent_trainings:
                raise LimitExceededException(
                    f"{len(training_now)} solution versions are already training "
                    f"(at most {self.max_concurrent_trainings} at a time)."
                )
            record = {
                "solutionVersionArn": f"{solution['solutionArn']}/{secrets.token_hex(4)}",
                "solutionArn": solution["solutionArn"],
                "datasetGroupArn": solution["datasetGroupArn"],
                "recipeArn": solution["recipeArn"],
                "performHPO": solution["performHPO"],
                "performAutoML": solution["performAutoML"],
                "performIncrementalUpdate": solution["performIncrementalUpdate"],
                "solutionConfig": solution["solutionConfig"],
                "trainingMode": mode,
                "trainingType": "MANUAL",
                "_region": region,
            }
            if solution.get("eventType"):
                record["eventType"] = solution["eventType"]
            if params.get("name"):
                record["name"] = params["name"]
            self._create("solution_version", record)
        return {"solutionVersionArn": record["solutionVersionArn"]}

    def _run_training(self, version: dict, context: JobContext) -> Callable[[dict], None]:
        in_group = self._in_use_by("dataset", "datasetGroupArn", version["datasetGroupArn"])
        datasets = {d["datasetType"]: d for d in in_group}
        interactions = datasets.get("Interactions")
        table, mark = self._interactions_table(interactions)
        if table is None:
            raise JobFailed(
                f"Dataset group {version['datasetGroupArn']} has no imported interactions: import an Interactions "
                "dataset (or record events with an event tracker) before training."
            )
        settings = model_training.training_settings(version)
        log = model_training.filter_interactions(dataset_data.interaction_log(table), settings)
        model_training.check_minimums(log)
        context.check()
        started = time.monotonic()
        trained = model_training.train(log, settings, catalog=self._catalog(datasets.get("Items")))
        context.check()
        write_private(self.model_path(version["solutionVersionArn"]), trained.model.save)
        hours = (time.monotonic() - started) / 3600

        def apply(record: dict) -> None:
            record["_metrics"] = trained.metrics
            record["_users_scored"] = trained.users_scored
            record["_interactions"] = len(log)
            # events recorded after this are folded into users' histories at request time
            record["_events_mark"] = mark
            record["trainingHours"] = hours

        return apply

    def _interactions_table(self, interactions: dict | None) -> tuple[pa.Table | None, int]:
        """The Interactions dataset's rows: bulk imports and events recorded with PutEvents; and the
        newest event's receive time (0 without events). None when there are no rows at all."""
        if interactions is None:
            return None, 0
        folder = self._dataset_dir(interactions["datasetArn"])
        fields = avro_schemas.parse_avro_schema(self.store.get("schema", interactions["schemaArn"])["schema"])
        events, mark = dataset_data.tracked_events_table(read_lines(folder / EVENTS_FILE), fields)
        parts = interactions.get("_parts") or []
        if not parts:
            return (events if events.num_rows else None), mark
        bulk = dataset_data.read_parts([folder / part for part in parts])
        if events.num_rows:
            bulk = pa.concat_tables([bulk, events.cast(bulk.schema)])
        return bulk, mark

    def _catalog(self, items_dataset: dict | None) -> list[str]:
        """The items dataset's ITEM_IDs (bulk and PutItems): coverage counts against the whole catalogue."""
        if not items_dataset:
            return []
        records, _ = self.views.records(items_dataset["datasetGroupArn"], "Items")
        return list(records)

    def describe_solution_version(self, params: dict, region: str) -> dict:
        return self._describe("solution_version", params["solutionVersionArn"], "solutionVersionArn")

    def list_solution_versions(self, params: dict, region: str) -> dict:
        if params.get("solutionArn"):  # the one List* whose model has ResourceNotFoundException
            self._get("solution", params["solutionArn"], "solutionArn")
        return self._list_under("solution_version", region, params, "solutionArn", "solution")

    def stop_solution_version_creation(self, params: dict, region: str) -> dict:
        arn = params["solutionVersionArn"]
        with self.store.locked():
            record = self._get("solution_version", arn, "solutionVersionArn")
            if record["status"] not in ("CREATE PENDING", "CREATE IN_PROGRESS"):
                raise ResourceInUseException(
                    f"Solution version {arn} cannot be stopped in status {record['status']}."
                )
            # as the service does: a job that has not started stops at once, a running one winds down
            pending = record["status"] == "CREATE PENDING"
            record["status"] = "CREATE STOPPED" if pending else "CREATE STOPPING"
            record["lastUpdatedDateTime"] = time.time()
            self.store.put("solution_version", record)
        return {}

    def get_solution_metrics(self, params: dict, region: str) -> dict:
        arn = params["solutionVersionArn"]
        record = self._get_active("solution_version", arn, "solutionVersionArn")
        return {"solutionVersionArn": arn, "metrics": record.get("_metrics", {})}

