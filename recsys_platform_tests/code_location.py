"""The code location as tests use it: the definitions built from the test's environment, assets by name,
and the resources the Personalize chain needs beside the warehouse."""

from __future__ import annotations

from dagster import AssetsDefinition, Definitions

from recsys_platform.definitions import build_definitions
from recsys_platform.lib.aws_session import AwsSession
from recsys_platform.lib.deployments import LOCAL_REGION, LOCAL_SERVICE_ROLE
from recsys_platform.lib.handoff_io_manager import LakeHandoffIOManager
from recsys_platform.lib.personalize_clients import PersonalizeResource
from recsys_platform.settings import PlatformSettings

GA4_ASSET_NAMES = ("ga4_events", "ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases",
                   "interactions")
SNAPSHOT_NAMES = ("personalize_interactions_csv", "personalize_items_csv", "personalize_users_csv")


def platform_definitions() -> Definitions:
    """What Dagster loads, with the settings of the current environment (a test's RECSYS_HOME, ...)."""
    return build_definitions(PlatformSettings.from_environment(read_dotenv=False))


def assets(*names: str, defs: Definitions | None = None) -> list[AssetsDefinition]:
    """The definitions that produce `names`, each once (the refined tables are one multi-asset)."""
    defs = defs or platform_definitions()
    found: list[AssetsDefinition] = []
    for name in names:
        definition = defs.get_assets_def(name)
        if all(definition is not other for other in found):
            found.append(definition)
    return found


def local_personalize_resource(endpoint_url: str) -> PersonalizeResource:
    """The embedded default's Personalize resource, pointed at a stand-in a test started."""
    return PersonalizeResource(
        aws=AwsSession(region_name=LOCAL_REGION, aws_access_key_id="local", aws_secret_access_key="local"),
        endpoint_url=endpoint_url,
        service_role_arn=LOCAL_SERVICE_ROLE,
    )


def chain_resources(warehouse, lake, personalize) -> dict:
    """Resources of the Personalize chain: the three services and the lake-backed hand-off IO manager."""
    return {"warehouse": warehouse, "lake": lake, "personalize": personalize,
            "handoff_io_manager": LakeHandoffIOManager(lake=lake)}
