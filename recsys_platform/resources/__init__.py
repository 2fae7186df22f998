"""Resources per deployment, chosen in one place by RECSYS_ENV (`local` default, `aws` production).

Assets only ever see the `warehouse`, `lake` and `personalize` keys; which implementation stands behind
each is decided here and nowhere else."""

from __future__ import annotations

from dagster import EnvVar
from dagster_gcp import BigQueryResource

from recsys_platform.resources.lake import build_lake_resource
from recsys_platform.resources.personalize import build_personalize_resource
from recsys_platform.resources.warehouse import BigQueryWarehouse, DuckDBWarehouse, Warehouse
from recsys_platform.settings import ga4_property_id, local_paths, recsys_env


def build_warehouse(env: str) -> Warehouse:
    if env == "local":
        paths = local_paths()
        return DuckDBWarehouse(
            ga4_property_id=ga4_property_id(),
            warehouse_path=str(paths.warehouse_db),
            export_path=str(paths.ga4_export_db),
            product_db_path=str(paths.product_db),
        )
    return BigQueryWarehouse(
        ga4_property_id=EnvVar("RECSYS_GA4_PROPERTY_ID"),
        bigquery=BigQueryResource(project=EnvVar("RECSYS_GCP_PROJECT")),
        platform_dataset=EnvVar("RECSYS_BQ_DATASET"),
        product_dataset=EnvVar("RECSYS_BQ_PRODUCT_DATASET"),
    )


def build_resources(env: str | None = None) -> dict:
    env = env or recsys_env()
    return {
        "warehouse": build_warehouse(env),
        "lake": build_lake_resource(env),
        "personalize": build_personalize_resource(env),
    }
