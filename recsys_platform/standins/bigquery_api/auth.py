"""Service-account credentials and the OAuth token endpoint, so clients authenticate the way they do
against Google.

google-auth reads a service-account key file (`GOOGLE_APPLICATION_CREDENTIALS`), signs a JWT assertion
with the key's RSA private key (RS256; claims iss, scope, iat, exp and aud = Google's token endpoint,
which google-auth writes whatever the key's `token_uri` says) and POSTs
`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>` to `token_uri`; the answer's
`access_token` then goes into `Authorization: Bearer` on every API call. The stand-in issues key files
whose `token_uri` is its own `/token`, keeps the public half of every key it issued (in
`<data_dir>/service_accounts.json`, so a restart still knows them), verifies each assertion's signature
and claims, and answers errors in Google's OAuth shape (`{"error": "invalid_grant",
"error_description": ...}`, HTTP 400). Access tokens live in memory: after a restart a client gets 401
once, and google-auth then fetches a new token by itself.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from recsys_platform.standins.bigquery_api.errors import BigQueryError

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_ENDPOINT = "https://oauth2.googleapis.com/token"  # the `aud` google-auth signs
TOKEN_LIFETIME_SECONDS = 3600
MAX_ASSERTION_LIFETIME_SECONDS = 3600  # Google accepts assertions of at most one hour
CLOCK_SKEW_SECONDS = 300
API_SCOPES = frozenset({
    "https://www.googleapis.com/auth/bigquery",
    "https://www.googleapis.com/auth/bigquery.readonly",
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/cloud-platform.read-only",
})
REGISTRY_FILE = "service_accounts.json"


class OAuthError(Exception):
    """A token-endpoint refusal in OAuth 2.0's error format (RFC 6749 section 5.2)."""

    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error = error
        self.description = description

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class Grant:
    """An access token the endpoint issued."""

    email: str
    scopes: frozenset[str]
    expires_at: float


def write_service_account_key(data_dir: str | Path, key_path: str | Path, token_uri: str, project_id: str,
                              client_email: str | None = None) -> Path:
    """Write a Google service-account key file whose `token_uri` is the stand-in's token endpoint, and
    register its public key with the stand-in that keeps its state in `data_dir`.

    The file is the format `google.auth.default()` loads from GOOGLE_APPLICATION_CREDENTIALS."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_id = secrets.token_hex(20)
    email = client_email or f"recsys-platform@{project_id}.iam.gserviceaccount.com"
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    document = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": key_id,
        "private_key": private_pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)).zfill(21),
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }
    KeyRegistry(data_dir).register(key_id, email, public_pem, token_uri)
    key_path = Path(key_path)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    # A private key: readable by its owner only, from the moment the file exists.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(document, out, indent=2)
    return key_path


class KeyRegistry:
    """The public keys of the service-account keys this stand-in issued, by key id, on disk."""

    def __init__(self, data_dir: str | Path):
        self.path = Path(data_dir) / REGISTRY_FILE
        self._lock = threading.Lock()

    def register(self, key_id: str, email: str, public_pem: str, token_uri: str) -> None:
        with self._lock:
            entries = self._read()
            entries[key_id] = {"client_email": email, "public_key": public_pem, "token_uri": token_uri}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            temporary.write_text(json.dumps(entries, indent=2))
            temporary.replace(self.path)

    def get(self, key_id: str) -> dict | None:
        return self._read().get(key_id)

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}


class TokenService:
    """Verifies JWT-bearer assertions, issues access tokens and checks them on API calls."""

    def __init__(self, registry: KeyRegistry):
        self.registry = registry
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def exchange(self, form: dict[str, str]) -> dict:
        grant_type = form.get("grant_type", "")
        if grant_type != JWT_BEARER:
            raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = form.get("assertion")
        if not assertion:
            raise OAuthError("invalid_request", "Missing required parameter: assertion")
        header, claims = self._verify(assertion)
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes:
            raise OAuthError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        token = "ya29.standin." + secrets.token_urlsafe(32)
        with self._lock:
            now = time.time()
            self._grants = {t: g for t, g in self._grants.items() if g.expires_at > now}
            self._grants[token] = Grant(claims["iss"], scopes, now + TOKEN_LIFETIME_SECONDS)
        return {"access_token": token, "expires_in": TOKEN_LIFETIME_SECONDS - 1, "token_type": "Bearer"}

    def _verify(self, assertion: str) -> tuple[dict, dict]:
        parts = assertion.split(".")
        if len(parts) != 3:
            raise OAuthError("invalid_grant", "Invalid JWT: the assertion is not header.payload.signature")
        try:
            header = json.loads(_b64decode(parts[0]))
            claims = json.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except ValueError:
            raise OAuthError("invalid_grant", "Invalid JWT: a segment is not base64url-encoded JSON") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise OAuthError("invalid_grant", "Invalid JWT: header and payload must be JSON objects")
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", f"Invalid JWT: algorithm {header.get('alg')!r} is not RS256")
        entry = self.registry.get(str(header.get("kid", "")))
        if entry is None:
            raise OAuthError("invalid_grant", "Invalid grant: account not found")
        public_key = serialization.load_pem_public_key(entry["public_key"].encode())
        try:
            public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.") from None
        if claims.get("iss") != entry["client_email"]:
            raise OAuthError("invalid_grant", "Invalid JWT: the issuer is not the key's service account")
        if claims.get("aud") not in (entry["token_uri"], GOOGLE_TOKEN_ENDPOINT):
            raise OAuthError("invalid_grant", f"Invalid JWT: audience must be {GOOGLE_TOKEN_ENDPOINT}")
        now = time.time()
        try:
            issued, expires = float(claims["iat"]), float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            raise OAuthError("invalid_grant", "Invalid JWT: iat and exp claims are required") from None
        if (issued > now + CLOCK_SKEW_SECONDS or expires < now - CLOCK_SKEW_SECONDS
                or expires - issued > MAX_ASSERTION_LIFETIME_SECONDS):
            raise OAuthError("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                             "reasonable timeframe. Check your iat and exp values in the JWT claim.")
        return header, claims

    def check(self, authorization: str | None) -> Grant:
        """The grant behind an `Authorization` header; BigQuery's 401/403 error otherwise."""
        if not authorization:
            raise BigQueryError(
                "required", "Request is missing required authentication credential. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
                location="Authorization", location_type="header", status=401)
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            grant = self._grants.get(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None or grant.expires_at <= time.time():
            raise BigQueryError(
                "authError", "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
                location="Authorization", location_type="header", status=401)
        if not grant.scopes & API_SCOPES:
            raise BigQueryError("insufficientPermissions", "Request had insufficient authentication scopes.",
                                status=403)
        return grant


def _b64decode(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError(str(error)) from None
