"""The Personalize chain: lake snapshots -> dataset import -> solution version -> gated campaign,
plus the v1-vs-v2 experiment. Resource keys: `warehouse`, `lake`, `personalize`.

`assets`, `asset_checks`, `jobs`, `schedules` and `sensors` are loaded on first access, so the
`recsys-platform bootstrap` command does not import Dagster's asset machinery to start.
"""

_DEFINITIONS = ("assets", "asset_checks", "jobs", "schedules", "sensors")


def __getattr__(name: str):
    if name in _DEFINITIONS:
        from recsys_platform.personalize import definitions

        return getattr(definitions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
