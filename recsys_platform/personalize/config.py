"""The platform's Personalize setup (personalize.yaml) as typed data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

CONFIG_FILE = Path(__file__).with_name("personalize.yaml")
DATASET_KEYS = ("interactions", "items", "users")


@dataclass(frozen=True)
class DatasetSpec:
    key: str  # interactions | items | users
    dataset_type: str
    name: str
    schema_file: Path

    @property
    def schema_name(self) -> str:
        return self.name

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
    dataset_group: str
    datasets: dict[str, DatasetSpec]
    solution: SolutionSpec
    comparison: dict[str, SolutionSpec]
    campaign_name: str
    min_provisioned_tps: int
    holdout: HoldoutSpec
    gate: GateSpec


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
        schema_file = base_dir / entry["schema"]
        if not schema_file.is_file():
            raise ValueError(f"personalize config: schema file {schema_file} of datasets.{key} does not exist")
        datasets[key] = DatasetSpec(key, entry["type"], entry["name"], schema_file)
    holdout = raw.get("holdout") or {}
    percent = int(holdout.get("percent_users", 10))
    if not 0 < percent < 100:
        raise ValueError(f"personalize config: holdout.percent_users must be in 1..99, got {percent}")
    gate = raw.get("gate") or {}
    return PersonalizeSetup(
        dataset_group=raw["dataset_group"],
        datasets=datasets,
        solution=_solution(raw.get("solution") or {}, "solution"),
        comparison={k: _solution(v, f"comparison.{k}") for k, v in (raw.get("comparison") or {}).items()},
        campaign_name=raw["campaign"]["name"],
        min_provisioned_tps=int(raw["campaign"].get("min_provisioned_tps", 1)),
        holdout=HoldoutSpec(
            percent_users=percent,
            days=int(holdout.get("days", 7)),
            seed=str(holdout.get("seed", "recsys-holdout")),
            target_event_type=holdout.get("target_event_type", "purchase"),
        ),
        gate=GateSpec(
            metric=gate.get("metric", "normalized_discounted_cumulative_gain_at_25"),
            tolerance=float(gate.get("tolerance", 0.0)),
            num_results=int(gate.get("num_results", 25)),
            require_confidence=bool(gate.get("require_confidence", True)),
        ),
    )


@lru_cache(maxsize=1)
def load_setup() -> PersonalizeSetup:
    return parse_setup(yaml.safe_load(CONFIG_FILE.read_text()), CONFIG_FILE.parent)
