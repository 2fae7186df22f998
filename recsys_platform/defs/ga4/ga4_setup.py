"""ga4.yaml as typed data: export sources, merge guards, consent and privacy settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from recsys_platform.lib.warehouse.export_tables import SourcePolicy
from recsys_platform.lib.yaml_files import parse_yaml

CONFIG_FILE = Path(__file__).with_name("ga4.yaml")
_PARAM_NAME = re.compile(r"^[A-Za-z0-9_.~-]+\*?$")


@dataclass(frozen=True)
class VolumeGuard:
    trailing_days: int
    min_ratio: float
    min_events: int


@dataclass(frozen=True)
class Ga4Setup:
    sources: SourcePolicy
    max_dropped_share: float
    volume_guard: VolumeGuard
    max_consent_denied_share: float
    url_params_kept: tuple[str, ...]

    @property
    def url_params_pattern(self) -> str:
        """An RE2 pattern matching one kept `name=value` pair of a query string (scrub_url.sql)."""
        names = [re.escape(p[:-1]) + r"[A-Za-z0-9_.~-]*" if p.endswith("*") else re.escape(p)
                 for p in self.url_params_kept]
        return r"\b(?:" + "|".join(names) + r")=[^&#]*" if names else r"a^"  # a^ matches nothing


def _share(raw: dict, key: str, default: float, where: str) -> float:
    value = float(raw.get(key, default))
    if not 0 <= value <= 1:
        raise ValueError(f"ga4 config: {where}{key} must be a share between 0 and 1, got {value}")
    return value


def parse_ga4_setup(raw: dict) -> Ga4Setup:
    export = raw.get("export") or {}
    merge = raw.get("merge") or {}
    guard = merge.get("volume_guard") or {}
    privacy = raw.get("privacy") or {}
    grace = float(export.get("intraday_grace_hours", 36))
    if grace < 0:
        raise ValueError(f"ga4 config: export.intraday_grace_hours must be >= 0, got {grace}")
    trailing = int(guard.get("trailing_days", 7))
    if trailing < 1:
        raise ValueError(f"ga4 config: merge.volume_guard.trailing_days must be at least 1, got {trailing}")
    kept = tuple(privacy.get("url_params_kept", ["utm_*"]))
    for name in kept:
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            raise ValueError(f"ga4 config: privacy.url_params_kept entry {name!r} is not a parameter name (or prefix*)")
    return Ga4Setup(
        sources=SourcePolicy(intraday_grace_hours=grace, use_fresh=bool(export.get("use_fresh_tables", True))),
        max_dropped_share=_share(merge, "max_dropped_share", 0.05, "merge."),
        volume_guard=VolumeGuard(trailing, _share(guard, "min_ratio", 0.5, "merge.volume_guard."),
                                 int(guard.get("min_events", 1000))),
        max_consent_denied_share=_share(raw.get("consent") or {}, "max_denied_share", 0.25, "consent."),
        url_params_kept=kept,
    )


@lru_cache(maxsize=1)
def load_ga4_setup() -> Ga4Setup:
    return parse_ga4_setup(parse_yaml(CONFIG_FILE.read_text()) or {})
