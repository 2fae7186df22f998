import datetime as dt
import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from moto import mock_aws

from recsys_platform.resources.personalize import (
    LocalPersonalizeResource,
    PersonalizeResource,
    build_personalize_resource,
)

ROLE = "arn:aws:iam::222222222222:role/personalize-operator"


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASOURCE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "source-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def _credentials(key: str, expires_in: dt.timedelta) -> dict:
    return {
        "Credentials": {
            "AccessKeyId": key,
            "SecretAccessKey": f"secret-{key}",
            "SessionToken": f"token-{key}",
            "Expiration": dt.datetime.now(dt.timezone.utc) + expires_in,
        }
    }


class _StubbedBaseSession:
    """Stands in for the source-account session: its STS client is a botocore Stubber."""

    region_name = "us-east-1"

    def __init__(self, sts):
        self._sts = sts

    def client(self, service, **kwargs):
        assert service == "sts"
        return self._sts


def test_assumed_role_credentials_refresh_before_expiry(aws_env, monkeypatch):
    sts = boto3.client("sts", region_name="us-east-1")
    expected = {"RoleArn": ROLE, "RoleSessionName": "nightly", "DurationSeconds": 900, "ExternalId": "shop-42"}
    with Stubber(sts) as stub:
        # The first credentials expire within botocore's mandatory refresh window.
        stub.add_response("assume_role", _credentials("ASIAFIRST0000000", dt.timedelta(minutes=5)), expected)
        stub.add_response("assume_role", _credentials("ASIASECOND000000", dt.timedelta(hours=1)), expected)
        monkeypatch.setattr(PersonalizeResource, "_base_session", lambda self: _StubbedBaseSession(sts))
        resource = PersonalizeResource(
            region_name="us-east-1", role_arn=ROLE, external_id="shop-42", role_session_name="nightly",
            role_duration_seconds=900,
        )
        credentials = resource.boto3_session().get_credentials()
        assert credentials.get_frozen_credentials().access_key == "ASIAFIRST0000000"
        # Five minutes from expiry: the next use assumes the role again.
        assert credentials.get_frozen_credentials().access_key == "ASIASECOND000000"
        # Fresh for an hour now: no further AssumeRole call.
        assert credentials.get_frozen_credentials().access_key == "ASIASECOND000000"
        stub.assert_no_pending_responses()


def test_cross_account_calls_are_signed_with_the_assumed_role(aws_env):
    signed_with = []

    def capture(request, **kwargs):
        signed_with.append(request.headers["Authorization"].decode())

    with mock_aws():
        resource = PersonalizeResource(region_name="us-east-1", role_arn=ROLE, external_id="shop-42")
        client = resource.get_client()
        client.meta.events.register("before-send.personalize", capture)
        client.list_schemas()
        assumed_key = resource.boto3_session().get_credentials().get_frozen_credentials().access_key
    assert assumed_key != "AKIASOURCE"
    assert signed_with and f"Credential={assumed_key}/" in signed_with[0]


def _json_response(request, status: int, body: dict) -> AWSResponse:
    class _Raw:
        def __init__(self, data):
            self._data = data

        def stream(self, **kwargs):
            yield self._data

    return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(json.dumps(body).encode()))


def test_throttling_is_retried(aws_env):
    resource = PersonalizeResource(region_name="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=5)
    client = resource.get_client()
    calls = []

    def throttle_twice(request, **kwargs):
        calls.append(request)
        if len(calls) <= 2:
            return _json_response(request, 400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
        return _json_response(request, 200, {"datasetGroups": []})

    client.meta.events.register("before-send.personalize", throttle_twice)
    assert client.list_dataset_groups()["datasetGroups"] == []
    assert len(calls) == 3


def test_retries_give_up_after_max_attempts(aws_env):
    from botocore.exceptions import ClientError

    client = PersonalizeResource(region_name="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=2).get_client()
    calls = []

    def always_throttle(request, **kwargs):
        calls.append(request)
        return _json_response(request, 400, {"__type": "ThrottlingException", "message": "Rate exceeded"})

    client.meta.events.register("before-send.personalize", always_throttle)
    with pytest.raises(ClientError, match="ThrottlingException"):
        client.list_dataset_groups()
    assert len(calls) == 2


def test_build_personalize_resource(monkeypatch, tmp_path):
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    monkeypatch.delenv("RECSYS_PERSONALIZE_ENDPOINT_URL", raising=False)
    local = build_personalize_resource("local")
    assert isinstance(local, LocalPersonalizeResource)
    assert local.state_dir == str(tmp_path / "personalize") and local.lake_root == str(tmp_path / "lake")
    monkeypatch.setenv("RECSYS_PERSONALIZE_ROLE_ARN", ROLE)
    monkeypatch.setenv("RECSYS_PERSONALIZE_EXTERNAL_ID", "shop-42")
    aws = build_personalize_resource("aws")
    assert type(aws) is PersonalizeResource and aws.role_arn == ROLE and aws.external_id == "shop-42"
    with pytest.raises(ValueError, match="unknown environment"):
        build_personalize_resource("prod")


def test_local_resource_uses_configured_endpoint_without_starting_a_server(aws_env):
    resource = LocalPersonalizeResource(endpoint_url="http://127.0.0.1:8765")
    assert resource.get_client().meta.endpoint_url == "http://127.0.0.1:8765"
    assert resource._server is None
