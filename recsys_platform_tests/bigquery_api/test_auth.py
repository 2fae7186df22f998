"""Credentials as google-auth uses them: a service-account key file, a signed JWT grant, bearer tokens."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from recsys_platform.standins.bigquery_api import write_service_account_key
from recsys_platform_tests.bigquery_api.conftest import PROJECT, run


def _api(standin, path: str) -> str:
    return f"{standin.endpoint_url}/bigquery/v2/projects/{PROJECT}{path}"


def test_key_file_is_a_service_account_key_whose_token_uri_is_the_standin(standin, tmp_path):
    import google.auth
    from google.auth.transport.requests import Request

    key = standin.write_credentials(tmp_path / "key.json", PROJECT)
    document = json.loads(key.read_text())
    assert document["type"] == "service_account"
    assert document["token_uri"] == f"{standin.endpoint_url}/token"
    assert key.stat().st_mode & 0o077 == 0  # a private key: owner-only
    credentials, project = google.auth.default(scopes=["https://www.googleapis.com/auth/bigquery"])
    assert project == PROJECT  # loaded from GOOGLE_APPLICATION_CREDENTIALS, the module's key
    credentials.refresh(Request())  # google-auth signs a JWT and POSTs it to token_uri
    answer = requests.get(_api(standin, "/datasets"), headers={"Authorization": f"Bearer {credentials.token}"})
    assert answer.status_code == 200, answer.text


def test_the_real_client_authenticates_and_the_dagster_resource_too(client, standin):
    from dagster_gcp import BigQueryResource

    assert run(client, "SELECT 1 AS one") == [{"one": 1}]
    with BigQueryResource(project=PROJECT).get_client() as bq:
        assert [dict(r) for r in bq.query("SELECT 'dagster' AS via").result()] == [{"via": "dagster"}]


def test_api_calls_without_a_token_are_refused_with_401(standin):
    answer = requests.get(_api(standin, "/datasets"))
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["status"] == "UNAUTHENTICATED"
    assert error["errors"][0]["reason"] == "required"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_the_standin_did_not_issue_is_refused(standin):
    answer = requests.get(_api(standin, "/datasets"), headers={"Authorization": "Bearer ya29.forged"})
    assert answer.status_code == 401
    assert answer.json()["error"]["errors"][0]["reason"] == "authError"


def test_a_jwt_signed_with_another_key_is_refused(standin, tmp_path, monkeypatch):
    import google.auth
    from google.auth.exceptions import RefreshError
    from google.auth.transport.requests import Request

    key = standin.write_credentials(tmp_path / "key.json", PROJECT)
    document = json.loads(key.read_text())
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    document["private_key"] = impostor.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()).decode()
    key.write_text(json.dumps(document))  # same key id and account, wrong private key
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/bigquery"])
    with pytest.raises(RefreshError, match="Invalid JWT Signature"):
        credentials.refresh(Request())


def test_a_key_the_standin_never_issued_is_refused(standin, tmp_path, monkeypatch):
    import google.auth
    from google.auth.exceptions import RefreshError
    from google.auth.transport.requests import Request

    # Registered with another stand-in's state folder, not this one's.
    key = write_service_account_key(tmp_path / "elsewhere", tmp_path / "key.json", standin.token_uri, PROJECT)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/bigquery"])
    with pytest.raises(RefreshError, match="account not found"):
        credentials.refresh(Request())


def _signed_assertion(key_path, claims_override: dict) -> str:
    document = json.loads(key_path.read_text())
    private = serialization.load_pem_private_key(document["private_key"].encode(), password=None)
    now = int(time.time())
    claims = {"iss": document["client_email"], "aud": "https://oauth2.googleapis.com/token",
              "scope": "https://www.googleapis.com/auth/bigquery", "iat": now, "exp": now + 3600, **claims_override}
    header = {"alg": "RS256", "typ": "JWT", "kid": document["private_key_id"]}

    def segment(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + base64.urlsafe_b64encode(signature).decode().rstrip("=")


def test_token_endpoint_checks_lifetime_and_grant_type(standin, tmp_path):
    key = standin.write_credentials(tmp_path / "key.json", PROJECT)
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    fresh = requests.post(standin.token_uri, data={"grant_type": grant, "assertion": _signed_assertion(key, {})})
    assert fresh.status_code == 200 and fresh.json()["token_type"] == "Bearer"
    hours_ago = int(time.time()) - 7200
    stale = requests.post(standin.token_uri, data={
        "grant_type": grant, "assertion": _signed_assertion(key, {"iat": hours_ago, "exp": hours_ago + 3600})})
    assert stale.status_code == 400
    assert stale.json()["error"] == "invalid_grant" and "short-lived" in stale.json()["error_description"]
    other = requests.post(standin.token_uri, data={"grant_type": "password", "assertion": "x"})
    assert other.status_code == 400 and other.json()["error"] == "unsupported_grant_type"
