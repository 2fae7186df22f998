"""The platform's Personalize setup (personalize.yaml) as typed data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from recsys_platform.shared.personalize_facts import METRIC_KEYS

CONFIG_FILE = Path(__file__).with_name("personalize.yaml")
DATASET_KEYS = ("interactions", "items", "users")


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
    window_days = int((raw.get("training") or {}).get("window_days", 90))
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
    )


def _gate(raw: dict) -> GateSpec:
    """The gate's settings, checked here so a typo fails at load time, not after hours of batch inference."""
    gate = GateSpec(
        metric=raw.get("metric", "normalized_discounted_cumulative_gain_at_25"),
        tolerance=float(raw.get("tolerance", 0.0)),
        num_results=int(raw.get("num_results", 25)),
        require_confidence=bool(raw.get("require_confidence", True)),
    )
    per_user_metrics = [key for key in METRIC_KEYS if key != "coverage"]  # coverage has no per-user value
    if gate.metric not in per_user_metrics:
        raise ValueError(f"personalize config: gate.metric {gate.metric!r} is not one of {per_user_metrics}")
    if gate.tolerance < 0:
        raise ValueError(f"personalize config: gate.tolerance must be >= 0, got {gate.tolerance}")
    if not 1 <= gate.num_results <= 500:
        raise ValueError(f"personalize config: gate.num_results must be in 1..500, got {gate.num_results}")
    return gate


@lru_cache(maxsize=1)
def load_setup() -> PersonalizeSetup:
    return parse_setup(yaml.safe_load(CONFIG_FILE.read_text()), CONFIG_FILE.parent)
