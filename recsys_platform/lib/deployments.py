"""The resources of each deployment, chosen in one place by `RECSYS_ENV` (`local` default, `aws` production).

Assets only ever see the `warehouse`, `lake` and `personalize` keys; which implementation stands behind
each is decided here and nowhere else. Each deployment's engine is imported only when it is chosen, so
the embedded default never loads BigQuery's client libraries.
"""

from __future__ import annotations

import os

from dagster import EnvVar

from recsys_platform.lib.aws_session import AwsSession
from recsys_platform.lib.lake import LocalLake, S3Lake
from recsys_platform.lib.personalize_clients import PersonalizeResource
from recsys_platform.settings import PlatformSettings

LOCAL_PERSONALIZE_ENDPOINT = "http://127.0.0.1:8765"
LOCAL_REGION = "us-east-1"
# Any role ARN: the local Personalize reads the lake folder directly.
LOCAL_SERVICE_ROLE = "arn:aws:iam::000000000000:role/recsys-local-personalize"


def resources_for(settings: PlatformSettings) -> dict:
    if settings.deployment == "local":
        return local_resources(settings)
    return aws_resources(settings)


def local_resources(settings: PlatformSettings) -> dict:
    from recsys_platform.lib.warehouse.duckdb_engine import DuckDBWarehouse

    paths = settings.paths
    return {
        "warehouse": DuckDBWarehouse(
            ga4_property_id=settings.ga4_property_id,
            additional_ga4_property_ids=list(settings.ga4_property_ids[1:]),
            warehouse_path=str(paths.warehouse_db),
            export_path=str(paths.ga4_export_db),
            product_db_path=str(paths.product_db),
        ),
        "lake": LocalLake(root=str(paths.lake)),
        "personalize": PersonalizeResource(
            # The local Personalize accepts any credentials; fixed ones keep the user's AWS profile out of it.
            aws=AwsSession(region_name=LOCAL_REGION, aws_access_key_id="local", aws_secret_access_key="local"),
            endpoint_url=os.environ.get("RECSYS_PERSONALIZE_ENDPOINT_URL") or LOCAL_PERSONALIZE_ENDPOINT,
            service_role_arn=LOCAL_SERVICE_ROLE,
        ),
    }


def aws_resources(settings: PlatformSettings) -> dict:
    from dagster_gcp import BigQueryResource

    from recsys_platform.lib.warehouse.bigquery_engine import BigQueryWarehouse

    aws = _aws_session()
    return {
        "warehouse": BigQueryWarehouse(
            ga4_property_id=settings.ga4_property_id,
            additional_ga4_property_ids=list(settings.ga4_property_ids[1:]),
            bigquery=BigQueryResource(project=EnvVar("RECSYS_GCP_PROJECT"),
                                      location=os.environ.get("RECSYS_BQ_LOCATION") or None),
            platform_dataset=EnvVar("RECSYS_BQ_DATASET"),
            product_dataset=EnvVar("RECSYS_BQ_PRODUCT_DATASET"),
            export_project=os.environ.get("RECSYS_GA4_EXPORT_PROJECT") or None,
            location=os.environ.get("RECSYS_BQ_LOCATION") or None,
        ),
        "lake": S3Lake(
            aws=aws,
            bucket=EnvVar("RECSYS_LAKE_BUCKET"),
            prefix=os.environ.get("RECSYS_LAKE_PREFIX", "recsys/"),
            server_side_encryption=os.environ.get("RECSYS_LAKE_SSE") or None,
            kms_key_id=os.environ.get("RECSYS_LAKE_KMS_KEY_ID") or None,
        ),
        "personalize": PersonalizeResource(
            aws=aws,
            endpoint_url=None,  # AWS_ENDPOINT_URL_PERSONALIZE, read by boto3, reaches a stand-in
            service_role_arn=EnvVar("RECSYS_PERSONALIZE_SERVICE_ROLE_ARN"),
        ),
    }


def _aws_session() -> AwsSession:
    # One session for S3, Personalize and SNS, with the configured role (cross-account setups).
    return AwsSession(
        region_name=EnvVar("AWS_REGION"),
        role_arn=os.environ.get("RECSYS_AWS_ROLE_ARN") or None,
        external_id=os.environ.get("RECSYS_AWS_EXTERNAL_ID") or None,
    )


def failure_notification_config(settings: PlatformSettings) -> dict:
    """Where failed runs are posted (defs/notifications.py `FailureNotifier`): Slack and/or an SNS topic,
    each only when its variables are set, so with none set nothing is posted. Secrets stay EnvVars, read
    when the sensor runs, never written into the definitions."""

    def secret(name: str):
        return EnvVar(name) if os.environ.get(name) else None

    return {
        "slack_webhook_url": secret("RECSYS_SLACK_WEBHOOK_URL"),
        "slack_bot_token": secret("RECSYS_SLACK_BOT_TOKEN"),
        "slack_channel": os.environ.get("RECSYS_SLACK_CHANNEL") or None,
        "sns_topic_arn": os.environ.get("RECSYS_SNS_TOPIC_ARN") or None,
        "webserver_base_url": os.environ.get("RECSYS_DAGSTER_URL") or None,
        # SNS with the deployment's AWS session (its role) in production; the default chain locally.
        "aws": _aws_session() if settings.deployment == "aws" and os.environ.get("RECSYS_SNS_TOPIC_ARN") else None,
    }
