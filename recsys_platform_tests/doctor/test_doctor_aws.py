"""`recsys-platform doctor` on the production deployment (RECSYS_ENV=aws), against loopback stand-ins.

A complete setup passes every check; then each test breaks one thing, by pointing a variable at a
deliberately wrong resource of the same world, and asserts that doctor names that problem, gives its fix,
and that every other check stays OK (so a problem is never blamed on the wrong prerequisite).
"""

from __future__ import annotations

import json
import uuid

import pytest

from recsys_platform_tests.doctor.conftest import (
    BARE_LAKE,
    EC2_PASSROLE_ROLE,
    EC2_TRUST_SERVICE_ROLE,
    LOCATION,
    NO_PASSROLE_ROLE,
    PLATFORM_ROLE,
    PRIVATE_LAKE,
    PROJECT,
    SERVICE_ROLE,
    Answering,
    answer_in_front_of_doctors,
    doctor,
    not_ok,
)


def test_a_complete_setup_passes_every_check(world, monkeypatch, capsys):
    code, checks = doctor(monkeypatch, capsys, world.env)
    assert not_ok(checks) == {}
    assert code == 0
    assert len(checks) == 20
    assert checks["bigquery.export_dataset"]["summary"] == f"shop-analytics.analytics_123456789 in {LOCATION}"
    export = checks["bigquery.export_tables"]["summary"]
    assert "newest day 2026-03-02 (events_20260302" in export
    assert "unrecognised events_* tables" in export and "events_20260230" in export
    assert "matches contract datastream" in checks["bigquery.replica_contract"]["summary"]
    assert checks["aws.role"]["summary"].startswith(f"assumed {PLATFORM_ROLE}")
    assert "encryption aws:kms" in checks["s3.write"]["summary"]
    # moto has no policy simulator: the report says how PassRole was decided instead.
    assert "read from the 2 policies of" in checks["iam.pass_role"]["summary"]
    assert "not implemented by this IAM endpoint" in checks["iam.pass_role"]["summary"]
    assert "aws:SourceAccount" in checks["iam.service_role_trust"]["summary"]  # shown as not evaluated
    # The probe object is gone: the platform's lake holds only what the platform wrote.
    import boto3

    s3 = boto3.client("s3", endpoint_url=world.moto_url, region_name="ap-northeast-2",
                      aws_access_key_id="admin", aws_secret_access_key="admin")
    assert s3.list_objects_v2(Bucket="recsys-lake").get("KeyCount", 0) == 0


def test_a_platform_dataset_in_another_location_is_named_in_the_text_report(world, monkeypatch, capsys):
    """What a person reads (`recsys-platform doctor` without --json), run in this process: the entry point
    is `recsys_platform.cli.main:main`, which finds the command module like every other."""
    from recsys_platform.cli.main import main
    from recsys_platform_tests.doctor.conftest import apply

    apply(monkeypatch, world.env, RECSYS_BQ_DATASET="recsys_us")
    capsys.readouterr()
    assert main(["doctor", "--no-dotenv"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "recsys-platform doctor: RECSYS_ENV=aws"
    assert sum(line.startswith("OK ") for line in lines) == 19
    failed = [i for i, line in enumerate(lines) if line.startswith("FAILED ")]
    assert len(failed) == 1
    assert lines[failed[0]].split(maxsplit=2)[1:] == [
        "bigquery.platform_dataset", f"{PROJECT}.recsys_us is in US, the GA4 export in {LOCATION}: a "
        "BigQuery job reads and writes one location only, so the merge cannot run"]
    assert lines[failed[0] + 1].strip() == (
        f"fix: a dataset's location cannot change: create the platform dataset in {LOCATION} under another "
        "name (point RECSYS_BQ_DATASET at the new name, then `recsys-platform doctor --create`) and delete "
        f"{PROJECT}.recsys_us once nothing needs it")
    assert lines[-1] == "1 of 20 checks need attention (1 FAILED)."


def test_a_missing_time_zone_is_named_and_the_rest_still_checked(world, monkeypatch, capsys):
    code, checks = doctor(monkeypatch, capsys, world.env, RECSYS_GA4_TIMEZONE=None)
    assert code == 1
    assert not_ok(checks) == {"settings.timezone": "MISSING"}
    timezone = checks["settings.timezone"]
    assert "RECSYS_GA4_TIMEZONE is required when RECSYS_ENV=aws" in timezone["summary"]
    assert "set RECSYS_GA4_TIMEZONE to the GA4 property's reporting time zone" in timezone["fix"]


def test_missing_variables_are_listed_each_with_its_meaning(world, monkeypatch, capsys):
    code, checks = doctor(monkeypatch, capsys, world.env, RECSYS_BQ_PRODUCT_DATASET=None,
                          RECSYS_PERSONALIZE_SERVICE_ROLE_ARN=None, RECSYS_PERSONALIZE_ROLE_ARN=PLATFORM_ROLE)
    assert code == 1
    variables = checks["settings.variables"]
    assert variables["status"] == "MISSING"
    assert "RECSYS_BQ_PRODUCT_DATASET: the BigQuery dataset the product DB replica" in variables["summary"]
    assert "RECSYS_PERSONALIZE_SERVICE_ROLE_ARN: the IAM role Personalize assumes" in variables["summary"]
    # The README once named this variable; nothing reads it, so it must not pass silently.
    assert "RECSYS_PERSONALIZE_ROLE_ARN is set but nothing reads it" in variables["summary"]
    # What needs the absent variables is not checked, and says why; the rest still is.
    assert checks["bigquery.platform_dataset"]["status"] == "UNCHECKED"
    assert "RECSYS_BQ_PRODUCT_DATASET not set" in checks["bigquery.platform_dataset"]["summary"]
    assert checks["iam.pass_role"]["status"] == "UNCHECKED"
    assert checks["s3.bucket_policy"]["status"] == checks["personalize.reachable"]["status"] == "OK"


def test_a_missing_platform_dataset_is_created_by_create_in_the_exports_location(world, monkeypatch, capsys):
    dataset = f"recsys_{uuid.uuid4().hex[:8]}"
    code, checks = doctor(monkeypatch, capsys, world.env, RECSYS_BQ_DATASET=dataset)
    assert code == 1
    assert not_ok(checks) == {"bigquery.platform_dataset": "MISSING"}
    platform = checks["bigquery.platform_dataset"]
    assert platform["summary"] == f"platform dataset {PROJECT}.{dataset} does not exist"
    assert f"`recsys-platform doctor --create` creates it in {LOCATION}" in platform["fix"]

    code, checks = doctor(monkeypatch, capsys, world.env, "--create", RECSYS_BQ_DATASET=dataset)
    assert code == 0 and not_ok(checks) == {}
    assert checks["bigquery.platform_dataset"]["summary"] == \
        f"{PROJECT}.{dataset} created in {LOCATION} (the export's location)"
    # There, and in the export's location (not the stand-in's default, US).
    with world.bigquery_client() as client:
        assert client.get_dataset(f"{PROJECT}.{dataset}").location == LOCATION



def test_a_missing_replica_table_and_a_column_of_the_wrong_type_are_named(world, monkeypatch, capsys):
    code, checks = doctor(monkeypatch, capsys, world.env, RECSYS_BQ_PRODUCT_DATASET="replica_broken")
    assert code == 1
    assert not_ok(checks) == {"bigquery.replica_contract": "FAILED"}
    problems = checks["bigquery.replica_contract"]["summary"].splitlines()
    assert problems[0] == f"the replica dataset {PROJECT}.replica_broken breaks contract datastream:"
    assert ("product_db.shop_order_items (the contract's order_items) does not exist in the replica"
            in problems)
    assert ("product_db.shop_items.price is STRING; items.price needs one of FLOAT64, NUMERIC, BIGNUMERIC, "
            "INT64" in problems)
    assert "RECSYS_PRODUCT_DB_CONTRACT" in checks["bigquery.replica_contract"]["fix"]


def test_a_missing_bucket_is_named(world, monkeypatch, capsys):
    code, checks = doctor(monkeypatch, capsys, world.env, RECSYS_LAKE_BUCKET="recsys-lake-absent")
    assert code == 1
    # The service role's own policy names the real buckets, so it is rightly not enough for this one.
    assert not_ok(checks) == {"s3.bucket": "MISSING", "s3.write": "UNCHECKED",
                              "s3.bucket_policy": "UNCHECKED", "iam.service_role_access": "FAILED"}
    assert checks["s3.bucket"]["summary"] == "bucket recsys-lake-absent does not exist"
    assert "create it in ap-northeast-2 (aws s3api create-bucket --bucket recsys-lake-absent" in \
        checks["s3.bucket"]["fix"]
    assert "bucket recsys-lake-absent is not reachable" in checks["s3.write"]["summary"]


@pytest.mark.parametrize(("bucket", "status"), [(PRIVATE_LAKE, "FAILED"), (BARE_LAKE, "MISSING")])
def test_a_bucket_policy_without_personalize_is_named(world, monkeypatch, capsys, bucket, status):
    code, checks = doctor(monkeypatch, capsys, world.env, RECSYS_LAKE_BUCKET=bucket)
    assert code == 1
    assert not_ok(checks) == {"s3.bucket_policy": status}
    policy = checks["s3.bucket_policy"]
    if status == "FAILED":
        assert policy["summary"].splitlines() == [
            f"the bucket policy of {bucket} does not let personalize.amazonaws.com:",
            f"s3:ListBucket on arn:aws:s3:::{bucket}",
            f"s3:GetObject on arn:aws:s3:::{bucket}/recsys/*",
            f"s3:PutObject on arn:aws:s3:::{bucket}/recsys/*"]
    else:
        assert policy["summary"] == f"bucket {bucket} has no bucket policy: Personalize may not read it"
    fix_policy = json.loads(policy["fix"].split("\n", 1)[1])  # the statement to add, ready to paste
    statement = fix_policy["Statement"][0]
    assert statement["Principal"] == {"Service": "personalize.amazonaws.com"}
    assert statement["Action"] == ["s3:GetObject", "s3:ListBucket", "s3:PutObject"]
    assert statement["Resource"] == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]


def test_a_service_role_that_does_not_trust_personalize_is_named(world, monkeypatch, capsys):
    code, checks = doctor(monkeypatch, capsys, world.env,
                          RECSYS_PERSONALIZE_SERVICE_ROLE_ARN=EC2_TRUST_SERVICE_ROLE)
    assert code == 1
    assert not_ok(checks) == {"iam.service_role_trust": "FAILED"}
    trust = checks["iam.service_role_trust"]
    assert trust["summary"] == ("the trust policy of recsys-personalize-ec2-trust does not let "
                                "personalize.amazonaws.com assume it")
    assert json.loads(trust["fix"].split("\n", 1)[1])["Statement"][0] == {
        "Effect": "Allow", "Principal": {"Service": "personalize.amazonaws.com"}, "Action": "sts:AssumeRole"}


def test_a_service_role_that_does_not_exist_is_named(world, monkeypatch, capsys):
    absent = SERVICE_ROLE + "-absent"
    code, checks = doctor(monkeypatch, capsys, world.env, RECSYS_PERSONALIZE_SERVICE_ROLE_ARN=absent)
    assert code == 1
    assert not_ok(checks) == {"iam.service_role": "MISSING", "iam.service_role_trust": "UNCHECKED",
                              "iam.service_role_access": "UNCHECKED"}
    assert "role recsys-personalize-absent does not exist" in checks["iam.service_role"]["summary"]


@pytest.mark.parametrize("platform_role", [NO_PASSROLE_ROLE, EC2_PASSROLE_ROLE],
                         ids=["no-passrole", "passrole-to-ec2-only"])
def test_passrole_not_allowed_is_named(world, monkeypatch, capsys, platform_role):
    code, checks = doctor(monkeypatch, capsys, world.env, RECSYS_AWS_ROLE_ARN=platform_role)
    assert code == 1
    assert not_ok(checks) == {"iam.pass_role": "FAILED"}
    pass_role = checks["iam.pass_role"]
    assert pass_role["summary"].startswith(
        f"{platform_role} may not iam:PassRole {SERVICE_ROLE}; read from the")
    assert pass_role["fix"].startswith(
        f"attach to {platform_role} a policy allowing iam:PassRole on {SERVICE_ROLE}")
    assert '"iam:PassedToService": "personalize.amazonaws.com"' in pass_role["fix"]


def test_passrole_is_asked_of_iams_simulator_where_there_is_one(world, monkeypatch, capsys):
    """moto has no SimulatePrincipalPolicy; this stands one in front of its IAM to check what doctor asks
    and how it reads the answer (the path a real account takes)."""
    asked = []

    def simulate_principal_policy(**request):
        asked.append(request)
        return {"EvaluationResults": [{"EvalActionName": "iam:PassRole", "EvalDecision": "implicitDeny"}]}

    answer_in_front_of_doctors(monkeypatch, "iam", simulate_principal_policy=simulate_principal_policy)
    code, checks = doctor(monkeypatch, capsys, world.env)
    assert code == 1 and not_ok(checks) == {"iam.pass_role": "FAILED"}
    assert checks["iam.pass_role"]["summary"] == \
        f"{PLATFORM_ROLE} may not iam:PassRole {SERVICE_ROLE}; iam:SimulatePrincipalPolicy"
    assert asked == [{"PolicySourceArn": PLATFORM_ROLE, "ActionNames": ["iam:PassRole"],
                      "ResourceArns": [SERVICE_ROLE],
                      "ContextEntries": [{"ContextKeyName": "iam:PassedToService",
                                          "ContextKeyValues": ["personalize.amazonaws.com"],
                                          "ContextKeyType": "string"}]}]


def test_a_403_on_head_bucket_is_explained(world, monkeypatch, capsys):
    """S3 answers HEAD with 403 when the caller may not list the bucket. moto does not (its access control
    does not cover HeadBucket), so the refusal is raised in front of its S3 client."""
    from botocore.exceptions import ClientError

    def head_bucket(**request):
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, "HeadBucket")

    answer_in_front_of_doctors(monkeypatch, "s3", head_bucket=head_bucket)
    code, checks = doctor(monkeypatch, capsys, world.env)
    assert code == 1
    assert not_ok(checks) == {"s3.bucket": "FAILED", "s3.write": "UNCHECKED", "s3.bucket_policy": "UNCHECKED"}
    bucket = checks["s3.bucket"]
    assert bucket["summary"].startswith("HEAD bucket recsys-lake was refused (403)")
    assert bucket["fix"].startswith("grant s3:ListBucket on arn:aws:s3:::recsys-lake")


def test_personalize_unreachable_is_named(world, monkeypatch, capsys):
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    code, checks = doctor(monkeypatch, capsys, world.env, AWS_ENDPOINT_URL_PERSONALIZE=endpoint)
    assert code == 1
    assert not_ok(checks) == {"personalize.reachable": "FAILED"}
    reachable = checks["personalize.reachable"]
    assert reachable["summary"].startswith(f"ListDatasetGroups at {endpoint} failed: Could not connect")
    assert "AWS_ENDPOINT_URL_PERSONALIZE" in reachable["fix"]


def test_unusable_aws_credentials_are_named_and_what_needs_them_is_not_checked(world, monkeypatch, capsys):
    code, checks = doctor(monkeypatch, capsys, world.env, AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    assert code == 1
    assert checks["aws.credentials"]["status"] == "MISSING"
    assert "AWS_ACCESS_KEY_ID" in checks["aws.credentials"]["fix"]
    assert {name for name, status in not_ok(checks).items() if status == "UNCHECKED"} == {
        "aws.role", "s3.bucket", "s3.write", "s3.bucket_policy", "iam.service_role", "iam.service_role_trust",
        "iam.service_role_access", "iam.pass_role", "personalize.reachable"}
    assert checks["bigquery.export_tables"]["status"] == "OK"  # the GCP side does not depend on AWS


def test_a_missing_ga4_export_dataset_is_named(world, monkeypatch, capsys):
    code, checks = doctor(monkeypatch, capsys, world.env, RECSYS_GA4_PROPERTY_ID="999999999")
    assert code == 1
    assert not_ok(checks)["bigquery.export_dataset"] == "MISSING"
    assert checks["bigquery.export_dataset"]["summary"] == \
        "GA4 export dataset shop-analytics.analytics_999999999 does not exist"
    assert "RECSYS_GA4_PROPERTY_ID" in checks["bigquery.export_dataset"]["fix"]
    assert all(status == "OK" for name, status in ((n, c["status"]) for n, c in checks.items())
               if name.startswith(("s3.", "iam.", "aws.", "personalize")))


def test_a_refused_gcp_key_is_named_and_what_needs_it_is_not_checked(world, monkeypatch, capsys, tmp_path):
    """A key file that loads but whose key the token endpoint refuses (deleted, or replaced by a new key):
    google-auth finds it, the token exchange fails with Google's "Invalid JWT Signature"."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    issued = json.loads(open(world.env["GOOGLE_APPLICATION_CREDENTIALS"]).read())
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    refused = tmp_path / "refused-key.json"
    refused.write_text(json.dumps({**issued, "private_key": other_key.decode()}))
    code, checks = doctor(monkeypatch, capsys, world.env, GOOGLE_APPLICATION_CREDENTIALS=str(refused))
    assert code == 1
    credentials = checks["gcp.credentials"]
    assert credentials["status"] == "FAILED"
    assert credentials["summary"].startswith(f"the credentials of {issued['client_email']} were refused")
    assert "Invalid JWT Signature" in credentials["summary"]
    assert "GOOGLE_APPLICATION_CREDENTIALS" in credentials["fix"]
    unchecked = {name for name, status in not_ok(checks).items() if status == "UNCHECKED"}
    assert {"bigquery.export_dataset", "bigquery.export_tables", "bigquery.replica_contract"} <= unchecked
    assert not any(name.startswith("bigquery.") for name, status in not_ok(checks).items()
                   if status != "UNCHECKED")
    assert all(checks[name]["status"] == "OK" for name in ("aws.credentials", "s3.write", "personalize.reachable"))


def test_a_probe_write_refused_under_the_configured_encryption_is_named(world, monkeypatch, capsys):
    """A bucket policy that requires another encryption, or a KMS key the role may not use, refuses the
    probe's PutObject with AccessDenied. moto enforces neither, so the refusal is raised in front of the
    lake's S3 client, as S3 words it."""
    from botocore.exceptions import ClientError

    from recsys_platform.lib.lake import S3Lake

    def put_object(**request):
        assert request.get("ServerSideEncryption") == "aws:kms"  # the lake's own encryption arguments
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "User is not authorized to perform: "
                                                                        "kms:GenerateDataKey"},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")

    real_client = S3Lake._client
    monkeypatch.setattr(S3Lake, "_client", lambda self: Answering(real_client(self), put_object=put_object))
    code, checks = doctor(monkeypatch, capsys, world.env)
    assert code == 1
    assert not_ok(checks) == {"s3.write": "FAILED"}
    write = checks["s3.write"]
    assert "(encryption aws:kms) failed" in write["summary"] and "kms:GenerateDataKey" in write["summary"]
    assert "kms:GenerateDataKey on the KMS key" in write["fix"] and "RECSYS_LAKE_SSE" in write["fix"]
