"""Describe-or-create the Personalize resources of personalize.yaml: dataset group, schemas, datasets,
solution, filters and the event tracker. Running it again finds everything by name and creates nothing
new; a resource whose settings in Personalize differ from the file (they are immutable) is refused by
name. The campaign is created by the chain once a solution version exists (a campaign needs one)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from recsys_platform.defs.personalize.job_waiting import WaitPolicy, list_all, wait_until_active
from recsys_platform.defs.personalize.personalize_setup import FilterSpec, PersonalizeSetup, SolutionSpec


@dataclass(frozen=True)
class PersonalizeArns:
    dataset_group_arn: str
    dataset_arns: dict[str, str]  # interactions | items | users -> datasetArn
    solution_arn: str
    created: tuple[str, ...]  # ARNs created by this call (empty when everything existed)
    filter_arns: dict[str, str] = field(default_factory=dict)  # filter name -> filterArn
    event_tracker_arn: str | None = None
    tracking_id: str | None = None  # what PutEvents names


def _find(items: list[dict], name: str, arn_key: str) -> str | None:
    for item in items:
        if item.get("name") == name:
            return item[arn_key]
    return None


def ensure_dataset_group(client, name: str, created: list[str], policy: WaitPolicy) -> str:
    arn = _find(list_all(client, "list_dataset_groups", "datasetGroups"), name, "datasetGroupArn")
    if arn is None:
        arn = client.create_dataset_group(name=name)["datasetGroupArn"]
        created.append(arn)
    wait_until_active(lambda: client.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"],
                      f"dataset group {name}", policy)
    return arn


def ensure_schema(client, name: str, schema_json: str, created: list[str]) -> str:
    arn = _find(list_all(client, "list_schemas", "schemas"), name, "schemaArn")
    if arn is None:
        arn = client.create_schema(name=name, schema=schema_json)["schemaArn"]
        created.append(arn)
        return arn
    existing = client.describe_schema(schemaArn=arn)["schema"]["schema"]
    if json.loads(existing) != json.loads(schema_json):
        # Personalize schemas are immutable: a changed schema needs a new name (and dataset).
        raise ValueError(f"schema {name} in Personalize differs from the repository's; give the new schema a new name")
    return arn


def ensure_dataset(client, group_arn: str, name: str, dataset_type: str, schema_arn: str,
                   created: list[str], policy: WaitPolicy) -> str:
    datasets = list_all(client, "list_datasets", "datasets", datasetGroupArn=group_arn)
    arn = _find(datasets, name, "datasetArn")
    if arn is None:
        arn = client.create_dataset(name=name, schemaArn=schema_arn, datasetGroupArn=group_arn,
                                    datasetType=dataset_type)["datasetArn"]
        created.append(arn)
    wait_until_active(lambda: client.describe_dataset(datasetArn=arn)["dataset"], f"dataset {name}", policy)
    return arn


def ensure_solution(client, group_arn: str, spec: SolutionSpec, created: list[str], policy: WaitPolicy) -> str:
    arn = _find(list_all(client, "list_solutions", "solutions", datasetGroupArn=group_arn), spec.name, "solutionArn")
    if arn is None:
        params = {
            "name": spec.name,
            "datasetGroupArn": group_arn,
            "recipeArn": spec.recipe,
            "performAutoTraining": spec.perform_auto_training,
        }
        if spec.event_type:
            params["eventType"] = spec.event_type
        arn = client.create_solution(**params)["solutionArn"]
        created.append(arn)
    existing = wait_until_active(lambda: client.describe_solution(solutionArn=arn)["solution"],
                                 f"solution {spec.name}", policy)
    _refuse_changed_solution(spec, existing)
    return arn


def _refuse_changed_solution(spec: SolutionSpec, existing: dict) -> None:
    """Solutions are immutable: a changed recipe, event type or auto-training in personalize.yaml would
    otherwise be ignored silently (and auto-training left on makes the schedule pay for training twice)."""
    differences = [
        f"{field}: {actual!r} in Personalize, {wanted!r} in personalize.yaml"
        for field, actual, wanted in (
            ("recipeArn", existing.get("recipeArn"), spec.recipe),
            ("eventType", existing.get("eventType") or None, spec.event_type),
            ("performAutoTraining", bool(existing.get("performAutoTraining", True)), spec.perform_auto_training),
        )
        if actual != wanted
    ]
    if differences:
        raise ValueError(f"solution {spec.name} differs from personalize.yaml ({'; '.join(differences)}); "
                         "give the changed solution a new name")


def ensure_filter(client, group_arn: str, spec: FilterSpec, created: list[str], policy: WaitPolicy) -> str:
    arn = _find(list_all(client, "list_filters", "Filters", datasetGroupArn=group_arn), spec.name, "filterArn")
    if arn is None:
        arn = client.create_filter(name=spec.name, datasetGroupArn=group_arn,
                                   filterExpression=spec.expression)["filterArn"]
        created.append(arn)
    existing = wait_until_active(lambda: client.describe_filter(filterArn=arn)["filter"], f"filter {spec.name}", policy)
    if existing.get("filterExpression") != spec.expression:
        # Filters cannot be updated; recommendations would silently keep the old expression.
        raise ValueError(
            f"filter {spec.name} in Personalize differs from personalize.yaml (expression "
            f"{existing.get('filterExpression')!r} in Personalize, {spec.expression!r} in personalize.yaml); "
            "filters are immutable: give it a new name (and delete the old filter once nothing uses it)"
        )
    return arn


def ensure_event_tracker(client, group_arn: str, name: str, created: list[str], policy: WaitPolicy) -> tuple[str, str]:
    """(eventTrackerArn, trackingId). A dataset group has at most one tracker: one of another name is refused."""
    trackers = list_all(client, "list_event_trackers", "eventTrackers", datasetGroupArn=group_arn)
    others = [t["name"] for t in trackers if t.get("name") != name]
    arn = _find(trackers, name, "eventTrackerArn")
    if arn is None:
        if others:
            raise ValueError(f"dataset group {group_arn} has the event tracker {others[0]}, not {name} of "
                             "personalize.yaml; a dataset group has only one: rename event_tracker.name to it")
        arn = client.create_event_tracker(name=name, datasetGroupArn=group_arn)["eventTrackerArn"]
        created.append(arn)
    tracker = wait_until_active(lambda: client.describe_event_tracker(eventTrackerArn=arn)["eventTracker"],
                                f"event tracker {name}", policy)
    return arn, tracker["trackingId"]


def provision(client, setup: PersonalizeSetup, policy: WaitPolicy = WaitPolicy(poll_seconds=2, deadline_seconds=900),
              extra_solutions: tuple[SolutionSpec, ...] = (), log: Callable[[str], None] | None = None) -> PersonalizeArns:
    """Dataset group, schemas, datasets, the production solution (plus `extra_solutions`), the filters and
    the event tracker, created if missing."""
    created: list[str] = []
    group_arn = ensure_dataset_group(client, setup.dataset_group, created, policy)
    dataset_arns = {}
    for key, spec in setup.datasets.items():
        schema_arn = ensure_schema(client, spec.name, spec.schema_json(), created)
        dataset_arns[key] = ensure_dataset(client, group_arn, spec.name, spec.dataset_type, schema_arn, created, policy)
    solution_arn = ensure_solution(client, group_arn, setup.solution, created, policy)
    for spec in extra_solutions:
        ensure_solution(client, group_arn, spec, created, policy)
    # Filters check their fields against the datasets' schemas, so they come after the datasets.
    filter_arns = {spec.name: ensure_filter(client, group_arn, spec, created, policy) for spec in setup.filters}
    tracker_arn = tracking_id = None
    if setup.event_tracker:
        tracker_arn, tracking_id = ensure_event_tracker(client, group_arn, setup.event_tracker, created, policy)
    if log is not None:
        log(f"provisioning: {len(created)} resources created" + "".join(f"\n  {arn}" for arn in created))
    return PersonalizeArns(group_arn, dataset_arns, solution_arn, tuple(created), filter_arns, tracker_arn, tracking_id)


def find_solution_arn(client, group_arn: str, name: str) -> str:
    arn = _find(list_all(client, "list_solutions", "solutions", datasetGroupArn=group_arn), name, "solutionArn")
    if arn is None:
        raise LookupError(f"solution {name} does not exist in {group_arn}; run `recsys-platform provision`")
    return arn


def find_campaign_arn(client, solution_arn: str, name: str) -> str | None:
    return _find(list_all(client, "list_campaigns", "campaigns", solutionArn=solution_arn), name, "campaignArn")


def find_event_tracker(client, dataset_group: str, name: str) -> tuple[str, str]:
    """(eventTrackerArn, trackingId) of the tracker `name` of the dataset group named `dataset_group`."""
    group_arn = _find(list_all(client, "list_dataset_groups", "datasetGroups"), dataset_group, "datasetGroupArn")
    arn = None
    if group_arn is not None:
        arn = _find(list_all(client, "list_event_trackers", "eventTrackers", datasetGroupArn=group_arn), name,
                    "eventTrackerArn")
    if arn is None:
        raise LookupError(f"event tracker {name} of dataset group {dataset_group} does not exist; "
                          "run `recsys-platform provision`")
    return arn, client.describe_event_tracker(eventTrackerArn=arn)["eventTracker"]["trackingId"]
