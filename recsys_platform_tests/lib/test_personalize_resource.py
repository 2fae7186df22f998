import datetime as dt
import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from moto import mock_aws

from recsys_platform.lib.aws_session import AwsSession
from recsys_platform.lib.personalize_clients import PersonalizeResource, PersonalizeUnreachable

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
        monkeypatch.setattr(AwsSession, "_base_session", lambda self: _StubbedBaseSession(sts))
        session = AwsSession(
            region_name="us-east-1", role_arn=ROLE, external_id="shop-42", role_session_name="nightly",
            role_duration_seconds=900,
        )
        credentials = session.session().get_credentials()
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
        aws = AwsSession(region_name="us-east-1", role_arn=ROLE, external_id="shop-42")
        client = PersonalizeResource(aws=aws).get_client()
        client.meta.events.register("before-send.personalize", capture)
        client.list_schemas()
        assumed_key = aws.session().get_credentials().get_frozen_credentials().access_key
    assert assumed_key != "AKIASOURCE"
    assert signed_with and f"Credential={assumed_key}/" in signed_with[0]


def _json_response(request, status: int, body: dict) -> AWSResponse:
    class _Raw:
        def __init__(self, data):
            self._data = data

        def stream(self, **kwargs):
            yield self._data

    return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(json.dumps(body).encode()))


def _offline_client(max_attempts: int):
    """A client whose requests never leave the process: `before-send` answers them."""
    return AwsSession(region_name="us-east-1", max_attempts=max_attempts).client("personalize", "http://127.0.0.1:9")


def test_throttling_is_retried(aws_env):
    client = _offline_client(max_attempts=5)
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

    client = _offline_client(max_attempts=2)
    calls = []

    def always_throttle(request, **kwargs):
        calls.append(request)
        return _json_response(request, 400, {"__type": "ThrottlingException", "message": "Rate exceeded"})

    client.meta.events.register("before-send.personalize", always_throttle)
    with pytest.raises(ClientError, match="ThrottlingException"):
        client.list_dataset_groups()
    assert len(calls) == 2


def test_a_missing_local_personalize_is_named_with_how_to_start_it(aws_env):
    resource = PersonalizeResource(aws=AwsSession(region_name="us-east-1"), endpoint_url="http://127.0.0.1:9")
    with pytest.raises(PersonalizeUnreachable, match=r"no Personalize answers at http://127.0.0.1:9 .*make serve"):
        resource.get_client()


def test_clients_are_built_once_per_service(aws_env):
    aws = AwsSession(region_name="us-east-1")
    assert aws.client("personalize") is aws.client("personalize")
    assert aws.client("personalize-runtime") is not aws.client("personalize")
