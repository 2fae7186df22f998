"""Personalize ARNs (`arn:aws:personalize:<region>:<account>:<type>/<name>[/<id>]`) and request regions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from recsys_platform.standins.local_personalize.errors import InvalidInputException

ACCOUNT_ID = "000000000000"
DEFAULT_REGION = "us-east-1"
RECIPE_ARN_PREFIX = "arn:aws:personalize:::recipe/"

# The SigV4 credential scope: Credential=<key id>/<date>/<region>/<service>/aws4_request
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")
_ARN = re.compile(r"^arn:aws:personalize:([a-z0-9-]+):(\d{12}):([a-z-]+)/(.+)$")


def region_from_authorization(header: str | None) -> str:
    """The region the client signed for; boto3 signs every request, so this is the client's region."""
    match = _CREDENTIAL_SCOPE.search(header or "")
    return match.group(1) if match else DEFAULT_REGION


def make_arn(region: str, resource_type: str, *parts: str) -> str:
    return f"arn:aws:personalize:{region}:{ACCOUNT_ID}:{resource_type}/{'/'.join(parts)}"


@dataclass(frozen=True)
class ParsedArn:
    region: str
    account: str
    resource_type: str
    path: tuple[str, ...]


def parse_arn(arn: str, expected_type: str, field: str) -> ParsedArn:
    """Split an ARN of `expected_type`; an ARN of another kind is the caller's mistake, not a lookup miss."""
    match = _ARN.match(arn or "")
    if not match or match.group(3) != expected_type:
        raise InvalidInputException(
            f"{field} {arn!r} is not a {expected_type} ARN "
            f"(expected arn:aws:personalize:<region>:<account>:{expected_type}/...)"
        )
    return ParsedArn(match.group(1), match.group(2), match.group(3), tuple(match.group(4).split("/")))


def recipe_name(recipe_arn: str) -> str:
    if not recipe_arn.startswith(RECIPE_ARN_PREFIX):
        raise InvalidInputException(
            f"recipeArn {recipe_arn!r} is not a recipe ARN (expected {RECIPE_ARN_PREFIX}<recipe-name>)"
        )
    return recipe_arn[len(RECIPE_ARN_PREFIX):]
