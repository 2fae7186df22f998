"""The Personalize chain built from a (modified) setup, as definitions.py builds it from personalize.yaml:
tests that change a policy (imports, training cadence, gate) run the same asset code with their setup."""

from __future__ import annotations

import dataclasses

from dagster import AssetsDefinition, DagsterInstance, materialize

from recsys_platform.defs.personalize.campaign import build_campaign
from recsys_platform.defs.personalize.dataset_import import build_dataset_import
from recsys_platform.defs.personalize.personalize_setup import PersonalizeSetup, load_setup
from recsys_platform.defs.personalize.snapshots import build_snapshot_assets
from recsys_platform.defs.personalize.solution_version import build_solution_version
from recsys_platform.defs.product_db.contract import load_contract
from recsys_platform.lib.partitions import daily_partitions
from recsys_platform.settings import PlatformSettings
from recsys_platform_tests.code_location import chain_resources
from recsys_platform_tests.personalize.conftest import FAST_WAIT

CHAIN_STEPS = ("personalize_dataset_import", "personalize_solution_version", "personalize_campaign")


def chain_assets(setup: PersonalizeSetup | None = None, campaign: bool = True) -> list[AssetsDefinition]:
    settings = PlatformSettings.from_environment(read_dotenv=False)
    days = daily_partitions(settings)
    setup = setup or load_setup()
    built = [
        *build_snapshot_assets(setup, days, settings.timezone, load_contract(settings.product_db_contract)),
        build_dataset_import(setup, days),
        build_solution_version(setup, days),
    ]
    if campaign:
        built.append(build_campaign(setup, days, settings.timezone))
    return built


def with_setup(**changes) -> PersonalizeSetup:
    """personalize.yaml's setup with some settings replaced (nested: `gate={"when_unscorable": "hold"}`)."""
    setup = load_setup()
    for name, value in changes.items():
        if isinstance(value, dict):
            value = dataclasses.replace(getattr(setup, name), **value)
        setup = dataclasses.replace(setup, **{name: value})
    return setup


def run_chain(assets, day: str, warehouse, lake, personalize, instance: DagsterInstance | None = None,
              selection=None, raise_on_error: bool = True, **step_config):
    """Materializes `assets` (or `selection` of them) for `day`; step_config: {"personalize_campaign": {...}}."""
    ops = {step: {"config": {**FAST_WAIT, **step_config.get(step, {})}} for step in CHAIN_STEPS
           if any(step in {k.to_user_string() for k in a.keys} for a in assets)}
    if selection is not None:
        chosen = {key for a in selection for key in (a.keys if hasattr(a, "keys") else [a])}
        ops = {step: cfg for step, cfg in ops.items() if any(step == k.to_user_string() for k in chosen)}
    return materialize(assets, instance=instance or DagsterInstance.ephemeral(), partition_key=day,
                       resources=chain_resources(warehouse, lake, personalize), selection=selection,
                       run_config={"ops": ops}, raise_on_error=raise_on_error)


def metadata(result, asset_name: str) -> dict:
    """The asset's materialization metadata as plain values."""
    return {k: v.value for k, v in result.asset_materializations_for_node(asset_name)[0].metadata.items()}
