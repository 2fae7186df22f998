"""boto3 clients for Amazon Personalize (`personalize`, `personalize-runtime`), from the shared AWS session.

The same resource talks to Amazon Personalize and to the embedded default's local Personalize: only
`endpoint_url` differs. The pipeline never starts the local one; `make demo`, `make dev` and the tests
do, and a step that finds nothing listening says how to start it.
"""

from __future__ import annotations

import socket
import urllib.parse

from dagster import ConfigurableResource
from pydantic import Field

from recsys_platform.lib.aws_session import AwsSession


class PersonalizeUnreachable(ConnectionError):
    """No Personalize answers at the configured endpoint."""


class PersonalizeResource(ConfigurableResource):
    """Amazon Personalize clients, and the role Personalize assumes to read the lake."""

    aws: AwsSession
    endpoint_url: str | None = Field(
        default=None, description="Another Personalize endpoint, e.g. the local one (`recsys-platform serve`)."
    )
    service_role_arn: str | None = Field(
        default=None,
        description="Role Personalize assumes to read imports from and write batch inference output to S3.",
    )

    def _checked_endpoint(self) -> str | None:
        if self.endpoint_url:
            url = urllib.parse.urlsplit(self.endpoint_url)
            try:
                socket.create_connection((url.hostname, url.port or 80), timeout=2).close()
            except OSError as error:
                raise PersonalizeUnreachable(
                    f"no Personalize answers at {self.endpoint_url} ({error.strerror or error}). On the embedded "
                    "default, start the local one with `make serve` (`make dev` and `make demo` start it themselves)."
                ) from None
        return self.endpoint_url

    def get_client(self):
        """boto3 `personalize` client (control plane: datasets, jobs, solutions, campaigns)."""
        return self.aws.client("personalize", self._checked_endpoint())

    def get_runtime_client(self):
        """boto3 `personalize-runtime` client (GetRecommendations)."""
        return self.aws.client("personalize-runtime", self._checked_endpoint())
