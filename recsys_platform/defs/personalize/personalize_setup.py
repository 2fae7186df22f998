"""The platform's Personalize setup (personalize.yaml) as typed data."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from recsys_platform.lib.yaml_files import parse_yaml
from recsys_platform.shared.personalize_facts import (
    MAX_FILTER_FIELDS,
    MAX_FILTER_FIELDS_PER_DATASET_GROUP,
    MAX_FILTER_INTERACTIONS_PER_EVENT_TYPE,
    MAX_FILTERS_PER_DATASET_GROUP,
    METRIC_KEYS,
    NAME_PATTERN,
)

CONFIG_FILE = Path(__file__).with_name("personalize.yaml")
DATASET_KEYS = ("interactions", "items", "users")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
UNSCORABLE_DECISIONS = ("promote", "hold")
BELOW_MINIMUM_CHOICES = ("full", "skip")
_NAME = re.compile(NAME_PATTERN)
# `Dataset.FIELD` references of a filter expression; CurrentUser / CurrentItem name Users / Items fields.
_FIELD_REFERENCE = re.compile(r"\b(Items|Users|Interactions|CurrentUser|CurrentItem)\.([A-Za-z_][A-Za-z0-9_]*)")
_REFERENCED_DATASET = {"Items": "items", "CurrentItem": "items", "Users": "users", "CurrentUser": "users",
                       "Interactions": "interactions"}


@dataclass(frozen=True)
class DatasetSpec:
    key: str  # interactions | items | users
    dataset_type: str
    name: str
    schema_file: Path

    def schema_json(self) -> str:
        return self.schema_file.read_text()

    def field_names(self) -> list[str]:
        return [field["name"] for field in json.loads(self.schema_json())["fields"]]


@dataclass(frozen=True)
class SolutionSpec:
    name: str
    recipe: str
    event_type: str | None = None
    perform_auto_training: bool = False


@dataclass(frozen=True)
class HoldoutSpec:
    percent_users: int
    days: int
    seed: str
    target_event_type: str


@dataclass(frozen=True)
class GateSpec:
    metric: str
    tolerance: float
    num_results: int
    require_confidence: bool = True
    # Fewer held-out users with a target than this: the versions are not scored, `when_unscorable` decides.
    min_holdout_users: int = 10
    when_unscorable: str = "promote"  # promote | hold


@dataclass(frozen=True)
class FilterSpec:
    """A Personalize filter the platform owns (CreateFilter); immutable once created."""

    name: str
    expression: str
    description: str = ""


@dataclass(frozen=True)
class Cadence:
    """When a FULL import or training is due: the last FULL one is `full_every_days` or more older than the
    training day, or the training day is one of `full_on_weekdays` (0 = Monday)."""

    full_every_days: int = 7
    full_on_weekdays: tuple[int, ...] = ()

    def full_due(self, training_date, last_full_date) -> str | None:
        """Why a FULL one is due on `training_date` (None: it is not)."""
        if training_date.weekday() in self.full_on_weekdays:
            return f"{training_date} is a {WEEKDAYS[training_date.weekday()].capitalize()} (full_on_weekdays)"
        if last_full_date is None:
            return None
        age = (training_date - last_full_date).days
        if age >= self.full_every_days:
            return (f"the last FULL one was for {last_full_date}, {age} day(s) before {training_date} "
                    f"(full_every_days: {self.full_every_days})")
        return None


@dataclass(frozen=True)
class ImportPolicy(Cadence):
    incremental_below_minimum: str = "full"  # full | skip


@dataclass(frozen=True)
class PersonalizeSetup:
    window_days: int  # days of interactions one training run learns from
    dataset_group: str
    datasets: dict[str, DatasetSpec]
    solution: SolutionSpec
    comparison: dict[str, SolutionSpec]
    campaign_name: str
    min_provisioned_tps: int
    holdout: HoldoutSpec
    gate: GateSpec
    filters: tuple[FilterSpec, ...] = ()
    serving_filter: str | None = None  # the name of the filter users get (and the gate scores with)
    event_tracker: str | None = None  # the event tracker's name (PutEvents)
    imports: ImportPolicy = field(default_factory=ImportPolicy)
    training: Cadence = field(default_factory=Cadence)


def _required(raw: dict, key: str, where: str):
    if not isinstance(raw, dict) or raw.get(key) in (None, ""):
        raise ValueError(f"personalize config: {where}{key} is missing")
    return raw[key]


def _solution(raw: dict, where: str) -> SolutionSpec:
    for key in ("name", "recipe"):
        if not raw.get(key):
            raise ValueError(f"{where}: missing {key!r}")
    return SolutionSpec(
        name=raw["name"],
        recipe=raw["recipe"],
        event_type=raw.get("event_type") or None,
        perform_auto_training=bool(raw.get("perform_auto_training", False)),
    )


def parse_setup(raw: dict, base_dir: Path) -> PersonalizeSetup:
    datasets = {}
    for key in DATASET_KEYS:
        entry = (raw.get("datasets") or {}).get(key)
        if not entry:
            raise ValueError(f"personalize config: datasets.{key} is missing")
        schema_file = base_dir / _required(entry, "schema", f"datasets.{key}.")
        if not schema_file.is_file():
            raise ValueError(f"personalize config: schema file {schema_file} of datasets.{key} does not exist")
        datasets[key] = DatasetSpec(
            key, _required(entry, "type", f"datasets.{key}."), _required(entry, "name", f"datasets.{key}."), schema_file
        )
    holdout = raw.get("holdout") or {}
    percent = int(holdout.get("percent_users", 10))
    if not 0 < percent < 100:
        raise ValueError(f"personalize config: holdout.percent_users must be in 1..99, got {percent}")
    holdout_days = int(holdout.get("days", 7))
    if holdout_days < 1:
        raise ValueError(f"personalize config: holdout.days must be at least 1, got {holdout_days}")
    campaign = _required(raw, "campaign", "")
    training = raw.get("training") or {}
    window_days = int(training.get("window_days", 90))
    filters = _filters(raw.get("filters") or [], datasets)
    if holdout_days >= window_days:
        raise ValueError(
            f"personalize config: the holdout ({holdout_days} days) must be shorter than training.window_days "
            f"({window_days})"
        )
    return PersonalizeSetup(
        window_days=window_days,
        dataset_group=_required(raw, "dataset_group", ""),
        datasets=datasets,
        solution=_solution(raw.get("solution") or {}, "solution"),
        comparison={k: _solution(v, f"comparison.{k}") for k, v in (raw.get("comparison") or {}).items()},
        campaign_name=_required(campaign, "name", "campaign."),
        min_provisioned_tps=int(campaign.get("min_provisioned_tps", 1)),
        holdout=HoldoutSpec(
            percent_users=percent,
            days=holdout_days,
            seed=str(holdout.get("seed", "recsys-holdout")),
            target_event_type=holdout.get("target_event_type", "purchase"),
        ),
        gate=_gate(raw.get("gate") or {}),
        filters=filters,
        serving_filter=_serving_filter(campaign, filters),
        event_tracker=(raw.get("event_tracker") or {}).get("name") or None,
        imports=ImportPolicy(**_cadence(raw.get("imports") or {}, "imports"),
                             incremental_below_minimum=_below_minimum(raw.get("imports") or {})),
        training=Cadence(**_cadence(training, "training")),
    )


def _gate(raw: dict) -> GateSpec:
    """The gate's settings, checked here so a typo fails at load time, not after hours of batch inference."""
    gate = GateSpec(
        metric=raw.get("metric", "normalized_discounted_cumulative_gain_at_25"),
        tolerance=float(raw.get("tolerance", 0.0)),
        num_results=int(raw.get("num_results", 25)),
        require_confidence=bool(raw.get("require_confidence", True)),
        min_holdout_users=int(raw.get("min_holdout_users", 10)),
        when_unscorable=str(raw.get("when_unscorable", "promote")),
    )
    if gate.when_unscorable not in UNSCORABLE_DECISIONS:
        raise ValueError(f"personalize config: gate.when_unscorable must be one of {UNSCORABLE_DECISIONS}, "
                         f"got {gate.when_unscorable!r}")
    if gate.min_holdout_users < 1:
        raise ValueError(f"personalize config: gate.min_holdout_users must be at least 1, got {gate.min_holdout_users}")
    per_user_metrics = [key for key in METRIC_KEYS if key != "coverage"]  # coverage has no per-user value
    if gate.metric not in per_user_metrics:
        raise ValueError(f"personalize config: gate.metric {gate.metric!r} is not one of {per_user_metrics}")
    if gate.tolerance < 0:
        raise ValueError(f"personalize config: gate.tolerance must be >= 0, got {gate.tolerance}")
    if not 1 <= gate.num_results <= 500:
        raise ValueError(f"personalize config: gate.num_results must be in 1..500, got {gate.num_results}")
    return gate


def _cadence(raw: dict, where: str) -> dict:
    every = int(raw.get("full_every_days", 7))
    if every < 1:
        raise ValueError(f"personalize config: {where}.full_every_days must be at least 1, got {every}")
    weekdays = []
    for day in raw.get("full_on_weekdays") or []:
        if str(day).lower() not in WEEKDAYS:
            raise ValueError(f"personalize config: {where}.full_on_weekdays: {day!r} is not one of {WEEKDAYS}")
        weekdays.append(WEEKDAYS.index(str(day).lower()))
    return {"full_every_days": every, "full_on_weekdays": tuple(sorted(set(weekdays)))}


def _below_minimum(raw: dict) -> str:
    choice = str(raw.get("incremental_below_minimum", "full"))
    if choice not in BELOW_MINIMUM_CHOICES:
        raise ValueError(f"personalize config: imports.incremental_below_minimum must be one of "
                         f"{BELOW_MINIMUM_CHOICES}, got {choice!r}")
    return choice


def _schema_types(spec: DatasetSpec) -> dict[str, str]:
    """Field name -> its Avro type without null (`string`, `boolean`, ...)."""
    types = {}
    for entry in json.loads(spec.schema_json())["fields"]:
        avro = entry["type"]
        types[entry["name"]] = next(t for t in avro if t != "null") if isinstance(avro, list) else avro
    return types


def _filters(raw: list, datasets: dict[str, DatasetSpec]) -> tuple[FilterSpec, ...]:
    """The filters, checked against what Personalize documents so a bad one fails at load time rather than
    at CreateFilter in the middle of a run."""
    if not isinstance(raw, list):
        raise ValueError("personalize config: filters must be a list of {name, expression}")
    if len(raw) > MAX_FILTERS_PER_DATASET_GROUP:
        raise ValueError(f"personalize config: {len(raw)} filters; Personalize allows at most "
                         f"{MAX_FILTERS_PER_DATASET_GROUP} per dataset group")
    filters, all_fields = [], set()
    for entry in raw:
        name = str(_required(entry, "name", "filters[]."))
        expression = str(_required(entry, "expression", "filters[]."))
        if not _NAME.match(name):
            raise ValueError(f"personalize config: filter name {name!r} must match {NAME_PATTERN}")
        fields = set()
        for dataset, field_name in _FIELD_REFERENCE.findall(expression):
            key = _REFERENCED_DATASET[dataset]
            if key == "interactions" and field_name != "EVENT_TYPE":
                raise ValueError(
                    f"personalize config: filter {name} tests Interactions.{field_name}; Personalize filters "
                    "interactions by EVENT_TYPE only (no time condition: 'purchased in the last N days' cannot "
                    f"be expressed; a filter sees each user's {MAX_FILTER_INTERACTIONS_PER_EVENT_TYPE} most "
                    "recent interactions per event type)")
            types = _schema_types(datasets[key])
            if field_name not in types:
                raise ValueError(f"personalize config: filter {name} names {dataset}.{field_name}, which the "
                                 f"{key} schema ({datasets[key].schema_file.name}) does not have")
            if types[field_name] == "boolean":
                raise ValueError(f"personalize config: filter {name} tests the boolean {dataset}.{field_name}; "
                                 "Personalize cannot filter on boolean fields (use a string 'True'/'False')")
            fields.add((key, field_name))
        if len(fields) > MAX_FILTER_FIELDS:
            raise ValueError(f"personalize config: filter {name} uses {len(fields)} distinct dataset fields "
                             f"(at most {MAX_FILTER_FIELDS})")
        all_fields |= fields
        filters.append(FilterSpec(name, expression, str(entry.get("description", ""))))
    if len({f.name for f in filters}) != len(filters):
        raise ValueError("personalize config: two filters share a name")
    if len(all_fields) > MAX_FILTER_FIELDS_PER_DATASET_GROUP:
        raise ValueError(f"personalize config: the filters use {len(all_fields)} distinct dataset fields "
                         f"(at most {MAX_FILTER_FIELDS_PER_DATASET_GROUP} per dataset group)")
    return tuple(filters)


def _serving_filter(campaign: dict, filters: tuple[FilterSpec, ...]) -> str | None:
    name = campaign.get("filter") or None
    if name is not None and name not in {f.name for f in filters}:
        raise ValueError(f"personalize config: campaign.filter {name!r} is not one of filters "
                         f"{[f.name for f in filters]}")
    return name


@lru_cache(maxsize=1)
def load_setup() -> PersonalizeSetup:
    return parse_setup(parse_yaml(CONFIG_FILE.read_text()), CONFIG_FILE.parent)
