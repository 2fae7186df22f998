"""Start the aws deployment's clouds on loopback: BigQuery, S3/STS/IAM (moto) and Personalize.

`start_local_cloud(LocalCloudConfig(...))` returns a running `LocalCloud` whose `.environment` is what a
production deployment sets (`RECSYS_ENV=aws`, the projects and datasets, the bucket, the roles) plus the
endpoint settings that point the real clients at the stand-ins (`BIGQUERY_EMULATOR_HOST`, the key file in
`GOOGLE_APPLICATION_CREDENTIALS`, `AWS_ENDPOINT_URL_<SERVICE>`). Nothing else differs from production.

- BigQuery stand-in: the GA4 export as dataset `analytics_<property>` of the export project, the product
  DB's Datastream replica as a dataset of the platform's project, and the platform's own dataset, empty,
  created in the same location with the real client.
- moto's server: the accounts, roles and encrypted bucket of `aws_accounts`.
- the local Personalize in S3 mode: it reads imports and writes batch inference output in moto's S3 with
  the service role it assumes through moto's STS, and reaches nothing outside the lake prefix.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from recsys_platform.standins.local_cloud.aws_accounts import AwsAccounts, provision
from recsys_platform.standins.local_cloud.moto_standin import MotoStandIn

# AWS's documented example keys: the platform account's base credentials. moto accepts any.
BASE_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
BASE_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# Services whose endpoint boto3 reads from AWS_ENDPOINT_URL_<service id, spaces to underscores, upper case>
# (botocore 1.44 ConfiguredEndpointProvider): moto serves the first three, the local Personalize the rest.
MOTO_SERVICES = ("S3", "STS", "IAM")
PERSONALIZE_SERVICES = ("PERSONALIZE", "PERSONALIZE_RUNTIME", "PERSONALIZE_EVENTS")
# Variables that would take a client elsewhere than the stand-ins (a profile, a session token, a global
# endpoint, the embedded default's Personalize endpoint): a deployment on the local cloud has none of them.
UNSET_VARIABLES = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL_SNS", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT",
    "RECSYS_PERSONALIZE_ENDPOINT_URL", "RECSYS_LAKE_KMS_KEY_ID", "RECSYS_PRODUCT_DB_CONTRACT",
)


@dataclass(frozen=True)
class LocalCloudConfig:
    """What the local cloud serves, and the names production would have (all overridable)."""

    state_dir: Path  # the stand-ins' state: BigQuery's catalog and tables, Personalize's resources
    export_db: Path  # the GA4 export (the simulator's DuckDB file; schema analytics_<property>)
    product_db: Path  # the product DB in the Datastream layout (schema product_db, shop_* tables)
    property_id: str
    timezone: str  # the GA4 property's reporting time zone
    export_project: str = "shop-analytics"
    platform_project: str = "shop-platform"
    product_dataset: str = "shop_replica"
    product_schema: str = "product_db"  # the schema of `product_db` served as `product_dataset`
    platform_dataset: str = "recsys"
    bigquery_location: str = "EU"
    region: str = "eu-central-1"
    data_account: str = "444455556666"  # the recommender's account: bucket, Personalize, roles
    bucket: str = ""  # default recsys-lake-<data_account>
    lake_prefix: str = "recsys/"
    external_id: str = "recsys-platform-local-cloud"
    host: str = "127.0.0.1"
    personalize_options: dict = field(default_factory=dict)  # e.g. {"step_delay": 0.02}

    @property
    def bucket_name(self) -> str:
        return self.bucket or f"recsys-lake-{self.data_account}"

    @property
    def export_dataset(self) -> str:
        return f"analytics_{self.property_id}"


class LocalCloud:
    """A running local cloud; `.stop()` (or `with`) ends every stand-in it started."""

    def __init__(self, config: LocalCloudConfig) -> None:
        self.config = config
        self.bigquery = None
        self.moto: MotoStandIn | None = None
        self.personalize = None
        self.accounts: AwsAccounts | None = None
        self.key_path: Path | None = None
        self.environment: dict[str, str] = {}

    # ---- start ---------------------------------------------------------------------------------

    def _start(self) -> None:
        config = self.config
        state = Path(config.state_dir).resolve()
        state.mkdir(parents=True, exist_ok=True)
        for path, what in ((config.export_db, "export_db"), (config.product_db, "product_db")):
            if not Path(path).is_file():
                raise FileNotFoundError(f"local cloud: {what} {path} does not exist (run `recsys-platform simulate "
                                        "--replica-layout datastream` first)")
        self.moto = MotoStandIn(host=config.host)
        base = {"aws_access_key_id": BASE_ACCESS_KEY_ID, "aws_secret_access_key": BASE_SECRET_ACCESS_KEY}
        self.accounts = provision(self.moto.endpoint_url, config.region, config.data_account, config.bucket_name,
                                  config.lake_prefix, config.external_id, base)
        self.personalize = self._start_personalize(state / "personalize")
        self._start_bigquery(state / "bigquery")
        self.environment = self._environment(state)

    def _start_personalize(self, state_dir: Path):
        from recsys_platform.standins.local_personalize.lakes import S3LakeConfig
        from recsys_platform.standins.local_personalize.server import start_in_background

        config, moto = self.config, self.moto
        s3 = S3LakeConfig(
            s3_endpoint_url=moto.endpoint_url, sts_endpoint_url=moto.endpoint_url, iam_endpoint_url=moto.endpoint_url,
            region=config.region, allowed_locations=(f"s3://{config.bucket_name}/{config.lake_prefix}",),
        )
        return start_in_background(state_dir, s3=s3, host=config.host, **config.personalize_options)

    def _start_bigquery(self, data_dir: Path):
        from recsys_platform.standins.bigquery_api import start_in_background

        config = self.config
        standin = start_in_background(
            data_dir, host=config.host, location=config.bigquery_location,
            datasets={
                (config.export_project, config.export_dataset): (Path(config.export_db), config.export_dataset),
                (config.platform_project, config.product_dataset): (Path(config.product_db), config.product_schema),
            },
        )
        # Set before the dataset is created: bigquery_client() reads them; stop() stops a half-started cloud.
        self.bigquery = standin
        self.key_path = standin.write_credentials(data_dir / "service-account.json", config.platform_project)
        with self.bigquery_client() as client:
            from google.cloud import bigquery

            dataset = bigquery.Dataset(f"{config.platform_project}.{config.platform_dataset}")
            dataset.location = config.bigquery_location
            dataset.description = "The recsys platform's tables (merged GA4 events, item tables, interactions)"
            client.create_dataset(dataset, exists_ok=True)

    def _environment(self, state: Path) -> dict[str, str]:
        config, accounts = self.config, self.accounts
        aws_config = state / "aws"
        aws_config.mkdir(exist_ok=True)
        for name in ("config", "credentials"):  # empty: no profile of this machine's user leaks in
            (aws_config / name).touch()
        environment = {
            "RECSYS_ENV": "aws",
            "RECSYS_GA4_TIMEZONE": config.timezone,
            "RECSYS_GA4_PROPERTY_ID": config.property_id,
            "RECSYS_GCP_PROJECT": config.platform_project,
            "RECSYS_BQ_DATASET": config.platform_dataset,
            "RECSYS_BQ_PRODUCT_DATASET": config.product_dataset,
            "RECSYS_GA4_EXPORT_PROJECT": config.export_project,
            "RECSYS_BQ_LOCATION": config.bigquery_location,
            "RECSYS_LAKE_BUCKET": accounts.bucket,
            "RECSYS_LAKE_PREFIX": accounts.prefix,
            "RECSYS_LAKE_SSE": "AES256",
            "RECSYS_AWS_ROLE_ARN": accounts.platform_role_arn,
            "RECSYS_AWS_EXTERNAL_ID": accounts.external_id,
            "RECSYS_PERSONALIZE_SERVICE_ROLE_ARN": accounts.service_role_arn,
            "AWS_REGION": config.region,
            "AWS_DEFAULT_REGION": config.region,
            "AWS_ACCESS_KEY_ID": BASE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": BASE_SECRET_ACCESS_KEY,
            "AWS_CONFIG_FILE": str(aws_config / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(aws_config / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            **self.bigquery.client_environment(self.key_path),
        }
        for service in MOTO_SERVICES:
            environment[f"AWS_ENDPOINT_URL_{service}"] = self.moto.endpoint_url
        for service in PERSONALIZE_SERVICES:
            environment[f"AWS_ENDPOINT_URL_{service}"] = self.personalize.endpoint_url
        return environment

    # ---- use -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def activated(self) -> Iterator[dict[str, str]]:
        """`os.environ` as the deployment's (the environment set, `UNSET_VARIABLES` removed) for the block."""
        saved = {name: os.environ.get(name) for name in (*self.environment, *UNSET_VARIABLES)}
        try:
            for name in UNSET_VARIABLES:
                os.environ.pop(name, None)
            os.environ.update(self.environment)
            yield self.environment
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    @contextlib.contextmanager
    def bigquery_client(self):
        """A google-cloud-bigquery client of the platform's project, on the stand-in (with the key file)."""
        from google.cloud import bigquery
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_file(
            str(self.key_path), scopes=["https://www.googleapis.com/auth/bigquery"])
        with bigquery.Client(project=self.config.platform_project, credentials=credentials,
                             client_options={"api_endpoint": self.bigquery.endpoint_url}) as client:
            yield client

    def aws_client(self, service: str, credentials: dict | None = None):
        """A boto3 client on the local cloud (moto or the local Personalize), by default with the platform
        account's base credentials."""
        import boto3

        endpoint = self.environment[f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}"]
        credentials = credentials or {"aws_access_key_id": BASE_ACCESS_KEY_ID,
                                      "aws_secret_access_key": BASE_SECRET_ACCESS_KEY}
        return boto3.client(service, endpoint_url=endpoint, region_name=self.config.region, **credentials)

    # ---- stop ----------------------------------------------------------------------------------

    def stop(self) -> None:
        errors = []
        for stopper in (self.personalize, self.bigquery, self.moto):
            if stopper is None:
                continue
            try:
                stopper.stop()
            except Exception as error:  # stop the others anyway
                errors.append(error)
        self.personalize = self.bigquery = self.moto = None
        if errors:
            raise errors[0]

    def __enter__(self) -> LocalCloud:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_local_cloud(config: LocalCloudConfig) -> LocalCloud:
    """Start every stand-in of the local cloud (see the module's docstring); stop it with `.stop()`."""
    cloud = LocalCloud(config)
    try:
        cloud._start()
    except BaseException:
        cloud.stop()
        raise
    return cloud
