"""Paging of every List* operation: `maxResults` per page (default 100, as the service), `nextToken`.

Pages are ordered newest first (creationDateTime, then ARN) and the token says where the last page
ended (that record's sort key), not how many records came before: a resource created or deleted while
a client pages never makes it skip or repeat a record. A token names the operation and the filter it
was issued for; used with another, or altered, it is refused with InvalidNextTokenException, as the
service does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence

from recsys_platform.standins.local_personalize.errors import InvalidNextTokenException

DEFAULT_MAX_RESULTS = 100
TOKEN_VERSION = 1


def sort_key(record: dict, arn_field: str) -> tuple[float, str]:
    """Newest first; the ARN breaks ties so the order is total."""
    return (-float(record.get("creationDateTime", 0)), str(record[arn_field]))


def _scope_digest(operation: str, scope: dict) -> str:
    text = json.dumps([operation, scope], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def encode_token(operation: str, scope: dict, last_key: tuple[float, str]) -> str:
    body = {"v": TOKEN_VERSION, "s": _scope_digest(operation, scope), "k": [last_key[0], last_key[1]]}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode("utf-8")).decode("ascii")


def decode_token(token: str, operation: str, scope: dict) -> tuple[float, str]:
    shown = token if len(token) <= 60 else token[:60] + "..."
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        key = body["k"]
        valid = (
            body["v"] == TOKEN_VERSION
            and isinstance(key, list) and len(key) == 2
            and isinstance(key[0], (int, float)) and not isinstance(key[0], bool)
            and isinstance(key[1], str)
        )
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise InvalidNextTokenException(f"nextToken {shown!r} is not a token this service issued.")
    if body.get("s") != _scope_digest(operation, scope):
        raise InvalidNextTokenException(
            f"nextToken {shown!r} was issued for another request; page {operation} with the token "
            "its previous page returned, and the same filter."
        )
    return float(key[0]), key[1]


def paginate(
    records: Sequence[dict],
    key: Callable[[dict], tuple[float, str]],
    operation: str,
    scope: dict,
    params: dict,
) -> tuple[list[dict], str | None]:
    """One page of `records` for a List* request, and the token of the next page (None at the end).
    `scope`: the request's filter members (e.g. datasetGroupArn); `params`: the request."""
    max_results = params.get("maxResults") or DEFAULT_MAX_RESULTS
    ordered = sorted(records, key=key)
    if params.get("nextToken"):
        after = decode_token(params["nextToken"], operation, scope)
        ordered = [record for record in ordered if key(record) > after]
    page = ordered[:max_results]
    token = encode_token(operation, scope, key(page[-1])) if len(ordered) > max_results else None
    return page, token
