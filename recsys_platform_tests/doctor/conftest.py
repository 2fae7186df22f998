"""One production-shaped world per test module, on loopback only, for `recsys-platform doctor` to inspect.

- BigQuery: the stand-in, reached by the real google-cloud-bigquery client (BIGQUERY_EMULATOR_HOST and a
  service-account key it issued). A simulated Seoul shop's GA4 export (project shop-analytics) and its
  Datastream-shaped product DB replica (shop-platform.shop_replica), both in asia-northeast3; the platform
  dataset `recsys` beside them; `recsys_us` in another location; `replica_broken` with a table missing and a
  column of the wrong type.
- S3, STS and IAM: moto's server, in a child process. In-process it would share moto's global state with
  other test modules' `mock_aws()`, which resets it on entry and exit.
- Personalize: the local Personalize (AWS_ENDPOINT_URL_PERSONALIZE), which answers ListDatasetGroups.

The healthy setup is `world.env`; each broken setup is the same world with a few variables pointing at a
deliberately wrong resource, so tests never change shared state and can share the servers.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = "shop-platform"
EXPORT_PROJECT = "shop-analytics"
PROPERTY = "123456789"
# A Seoul shop's export lives in Seoul; not the stand-in's default location (US), so a dataset that ends
# up in asia-northeast3 was put there on purpose.
LOCATION = "asia-northeast3"
REGION = "ap-northeast-2"
ACCOUNT = "123456789012"  # moto's default account
FIRST_DAY = dt.date(2026, 3, 1)
ODD_TABLE = "events_20260230"  # no such day: listed as unrecognised, never raised on
PERSONALIZE = "personalize.amazonaws.com"

PLATFORM_ROLE = f"arn:aws:iam::{ACCOUNT}:role/recsys-platform"
NO_PASSROLE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/recsys-platform-no-passrole"
EC2_PASSROLE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/recsys-platform-passrole-ec2"
SERVICE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/recsys-personalize"
EC2_TRUST_SERVICE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/recsys-personalize-ec2-trust"
LAKE = "recsys-lake"
PRIVATE_LAKE = "recsys-lake-private"  # a bucket policy, but none for Personalize
BARE_LAKE = "recsys-lake-bare"  # no bucket policy at all

_MOTO = """
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # serve until the test process closes the pipe, or exits
server.stop()
"""

# Variables of the surrounding shell that would change what boto3 or the platform reads.
_CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "RECSYS_PERSONALIZE_ENDPOINT_URL",
            "RECSYS_PERSONALIZE_ROLE_ARN", "RECSYS_PERSONALIZE_EXTERNAL_ID", "RECSYS_PRODUCT_DB_CONTRACT",
            "RECSYS_START_DATE")


@dataclass
class World:
    env: dict[str, str | None]
    bigquery: object  # the BigQuery stand-in
    moto_url: str

    def bigquery_client(self):
        from google.cloud import bigquery

        return bigquery.Client(project=PROJECT)


def _policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _simulated_shop(folder: Path):
    from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate

    shop = simulate(SimulationConfig(home=folder, days=2, events_per_day=150, users=30, items=15, seed=3,
                                     start_date=FIRST_DAY, property_id=PROPERTY, timezone="Asia/Seoul",
                                     replica_layout="datastream"))
    import duckdb

    with duckdb.connect(str(shop.export_db)) as con:  # a table GA4 would never write
        con.execute(f"CREATE TABLE analytics_{PROPERTY}.{ODD_TABLE} AS "
                    f"SELECT * FROM analytics_{PROPERTY}.events_{FIRST_DAY:%Y%m%d} LIMIT 0")
    return shop


def _bigquery_world(folder: Path, shop):
    from google.cloud import bigquery

    from recsys_platform.standins.bigquery_api import start_in_background

    standin = start_in_background(folder / "state", projects={EXPORT_PROJECT: shop.export_db},
                                  datasets={(PROJECT, "shop_replica"): (shop.product_db, "product_db")})
    # Served files take the stand-in's default location; record the export's and the replica's as Seoul,
    # where BigQuery keeps what a Seoul shop links (the stand-in's catalog is where it keeps locations).
    standin.storage.catalog.put_dataset(EXPORT_PROJECT, f"analytics_{PROPERTY}", LOCATION)
    standin.storage.catalog.put_dataset(PROJECT, "shop_replica", LOCATION)
    key = standin.write_credentials(folder / "key.json", PROJECT)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in standin.client_environment(key).items():
            patch.setenv(name, value)
        with bigquery.Client(project=PROJECT) as client:
            for name, location in (("recsys", LOCATION), ("recsys_us", "US"), ("replica_broken", LOCATION)):
                dataset = bigquery.Dataset(f"{PROJECT}.{name}")
                dataset.location = location
                client.create_dataset(dataset)
            # The replica as it would look after a schema change nobody told the platform about:
            # shop_order_items was not replicated, and shop_items.price arrived as STRING.
            for table in ("shop_items", "shop_users", "shop_orders"):
                schema = [bigquery.SchemaField(f.name, "STRING" if (table, f.name) == ("shop_items", "price")
                                               else f.field_type, mode=f.mode, fields=f.fields)
                          for f in client.get_table(f"{PROJECT}.shop_replica.{table}").schema]
                client.create_table(bigquery.Table(f"{PROJECT}.replica_broken.{table}", schema=schema))
    return standin, standin.client_environment(key)


def _aws_world(url: str) -> dict[str, str]:
    import boto3

    def client(service):
        return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id="admin",
                            aws_secret_access_key="admin")

    iam, s3 = client("iam"), client("s3")
    deployer = iam.create_user(UserName="recsys-deployer")["User"]["Arn"]
    key = iam.create_access_key(UserName="recsys-deployer")["AccessKey"]
    platform_access = iam.create_policy(PolicyName="recsys-platform-access", PolicyDocument=_policy(
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                       "s3:GetBucketPolicy"], "Resource": "arn:aws:s3:::recsys-lake*"},
        {"Effect": "Allow", "Action": "personalize:*", "Resource": "*"},
        {"Effect": "Allow", "Action": ["iam:GetRole", "iam:List*", "iam:GetPolicy", "iam:GetPolicyVersion",
                                       "iam:GetRolePolicy", "iam:SimulatePrincipalPolicy"], "Resource": "*"},
    ))["Policy"]["Arn"]

    def pass_role(service: str) -> str:
        return _policy({"Effect": "Allow", "Action": "iam:PassRole",
                        "Resource": f"arn:aws:iam::{ACCOUNT}:role/service-role/recsys-personalize*",
                        "Condition": {"StringEquals": {"iam:PassedToService": service}}})

    trusts_deployer = _policy({"Effect": "Allow", "Principal": {"AWS": deployer}, "Action": "sts:AssumeRole",
                               "Condition": {"StringEquals": {"sts:ExternalId": "shop-42"}}})
    for arn, inline in ((PLATFORM_ROLE, pass_role(PERSONALIZE)), (NO_PASSROLE_ROLE, None),
                        (EC2_PASSROLE_ROLE, pass_role("ec2.amazonaws.com"))):
        name = arn.rsplit("/", 1)[1]
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trusts_deployer)
        iam.attach_role_policy(RoleName=name, PolicyArn=platform_access)
        if inline:
            iam.put_role_policy(RoleName=name, PolicyName="pass-the-personalize-role", PolicyDocument=inline)

    lake_access = _policy({"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
                           "Resource": [f"arn:aws:s3:::{b}{suffix}" for b in (LAKE, PRIVATE_LAKE, BARE_LAKE)
                                        for suffix in ("", "/*")]})
    # The trust policy the developer guide gives, with the confused-deputy condition it recommends.
    for arn, service in ((SERVICE_ROLE, PERSONALIZE), (EC2_TRUST_SERVICE_ROLE, "ec2.amazonaws.com")):
        name = arn.rsplit("/", 1)[1]
        iam.create_role(RoleName=name, Path="/service-role/", AssumeRolePolicyDocument=_policy(
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole",
             "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}))
        iam.put_role_policy(RoleName=name, PolicyName="lake-access", PolicyDocument=lake_access)

    for bucket in (LAKE, PRIVATE_LAKE, BARE_LAKE):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    # The bucket policy of the Personalize developer guide ("Giving Amazon Personalize access to Amazon S3
    # resources"): list the bucket, read the imports, write batch inference output.
    s3.put_bucket_policy(Bucket=LAKE, Policy=_policy(
        {"Sid": "PersonalizeS3BucketAccessPolicy", "Effect": "Allow", "Principal": {"Service": PERSONALIZE},
         "Action": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
         "Resource": [f"arn:aws:s3:::{LAKE}", f"arn:aws:s3:::{LAKE}/*"]}))
    s3.put_bucket_policy(Bucket=PRIVATE_LAKE, Policy=_policy(
        {"Effect": "Allow", "Principal": {"AWS": PLATFORM_ROLE}, "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{PRIVATE_LAKE}", f"arn:aws:s3:::{PRIVATE_LAKE}/*"]}))
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from recsys_platform.standins.local_personalize.server import start_in_background as start_personalize

    folder = tmp_path_factory.mktemp("doctor")
    moto = subprocess.Popen([sys.executable, "-c", _MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    standin = personalize = None
    try:
        moto_url = f"http://127.0.0.1:{int(moto.stdout.readline())}"
        shop = _simulated_shop(folder / "shop")
        standin, bigquery_env = _bigquery_world(folder / "bigquery", shop)
        aws_keys = _aws_world(moto_url)
        personalize = start_personalize(folder / "personalize", folder / "lake")
        env = {name: None for name in _CLEARED}
        env.update(bigquery_env)
        env.update(aws_keys)
        env.update({
            "RECSYS_ENV": "aws",
            "RECSYS_HOME": str(folder / "home"),
            "RECSYS_GA4_PROPERTY_ID": PROPERTY,
            "RECSYS_GA4_TIMEZONE": "Asia/Seoul",
            "RECSYS_GCP_PROJECT": PROJECT,
            "RECSYS_BQ_DATASET": "recsys",
            "RECSYS_BQ_PRODUCT_DATASET": "shop_replica",
            "RECSYS_GA4_EXPORT_PROJECT": EXPORT_PROJECT,
            "RECSYS_BQ_LOCATION": LOCATION,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(folder / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_S3": moto_url,
            "AWS_ENDPOINT_URL_STS": moto_url,
            "AWS_ENDPOINT_URL_IAM": moto_url,
            "AWS_ENDPOINT_URL_PERSONALIZE": personalize.endpoint_url,
            "RECSYS_AWS_ROLE_ARN": PLATFORM_ROLE,
            "RECSYS_AWS_EXTERNAL_ID": "shop-42",
            "RECSYS_LAKE_BUCKET": LAKE,
            "RECSYS_LAKE_PREFIX": "recsys/",
            "RECSYS_LAKE_SSE": "aws:kms",
            "RECSYS_LAKE_KMS_KEY_ID": "alias/recsys-lake",
            "RECSYS_PERSONALIZE_SERVICE_ROLE_ARN": SERVICE_ROLE,
        })
        yield World(env, standin, moto_url)
    finally:
        if personalize is not None:
            personalize.stop()
        if standin is not None:
            standin.stop()
        moto.stdin.close()
        try:
            moto.wait(timeout=10)
        except subprocess.TimeoutExpired:
            moto.kill()


def apply(monkeypatch, env: dict[str, str | None], **overrides: str | None) -> None:
    """Set the process environment to `env` with `overrides` (None: unset), for this test only."""
    for name, value in {**env, **overrides}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def doctor(monkeypatch, capsys, env: dict[str, str | None], *args: str, **overrides: str | None):
    """Run `recsys-platform doctor --json` in this process on `env` + `overrides`:
    (exit code, {name: check})."""
    from recsys_platform.cli.main import main

    apply(monkeypatch, env, **overrides)
    capsys.readouterr()
    code = main(["doctor", "--json", "--no-dotenv", *args])
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] == (code == 0)
    return code, {check["name"]: check for check in report["checks"]}


def not_ok(checks: dict) -> dict[str, str]:
    return {name: check["status"] for name, check in checks.items() if check["status"] != "OK"}


class Answering:
    """A boto3 client whose named operations the test answers itself: what moto does not do (IAM's policy
    simulator, S3's 403 on HEAD, a KMS refusal); every other call reaches the client."""

    def __init__(self, client, **operations):
        self._client = client
        self._operations = operations

    def __getattr__(self, name):
        return self._operations[name] if name in self._operations else getattr(self._client, name)


def answer_in_front_of_doctors(monkeypatch, service: str, **operations) -> None:
    """Doctor's boto3 clients of `service` answer `operations` themselves (see `Answering`)."""
    from recsys_platform.lib import prerequisites

    real_client = prerequisites._client
    monkeypatch.setattr(prerequisites, "_client", lambda aws, name, endpoint_url=None: (
        Answering(real_client(aws, name, endpoint_url), **operations) if name == service else
        real_client(aws, name, endpoint_url)))
