"""Personalize ARNs (`arn:aws:personalize:<region>:<account>:<type>/<name>[/<id>]`) and request regions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from recsys_platform.standins.local_personalize.errors import IncompleteSignatureException, InvalidInputException

ACCOUNT_ID = "000000000000"
DEFAULT_REGION = "us-east-1"
RECIPE_ARN_PREFIX = "arn:aws:personalize:::recipe/"

# The SigV4 credential scope: Credential=<key id>/<date>/<region>/<service>/aws4_request
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]*/\d{8}/([^/,\s]*)/")
# AWS region names: us-east-1, ap-northeast-2, us-gov-west-1, eu-isoe-west-1 ...; the region becomes
# part of ARNs and so of file names, so nothing else is accepted.
_REGION = re.compile(r"^[a-z]{2}(-[a-z]{2,10}){1,3}-\d{1,2}$")
MAX_AUTHORIZATION_LENGTH = 4096
_ARN = re.compile(r"^arn:aws:personalize:([a-z0-9-]+):(\d{12}):([a-z-]+)/(.+)$")


def region_from_authorization(header: str | None) -> str:
    """The region the client signed for; boto3 signs every request, so this is the client's region.
    An unsigned request (curl, a test) is in the default region; a credential scope whose region is not
    an AWS region name is refused (IncompleteSignatureException, 400)."""
    if not header:
        return DEFAULT_REGION
    if len(header) > MAX_AUTHORIZATION_LENGTH:
        raise IncompleteSignatureException(
            f"the Authorization header has {len(header)} characters (at most {MAX_AUTHORIZATION_LENGTH})"
        )
    match = _CREDENTIAL_SCOPE.search(header)
    if not match:
        return DEFAULT_REGION
    region = match.group(1)
    if not _REGION.match(region):
        shown = region if len(region) <= 40 else region[:40] + f"... ({len(region)} characters)"
        raise IncompleteSignatureException(
            f"the credential scope's region {shown!r} is not an AWS region name (such as us-east-1)"
        )
    return region


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
