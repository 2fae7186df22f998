"""A local stand-in for Amazon Personalize that boto3 reaches through `endpoint_url`.

It speaks Personalize's own wire protocol, keeps its resources on disk, runs imports, trainings and
batch inference as background jobs with the service's status lifecycle, and serves GetRecommendations
from real models. The pipeline never imports this package: only boto3 clients talk to it.

    recsys-platform serve --port 8765        # or, in-process: start_in_background() -> .endpoint_url

    personalize = boto3.client("personalize", endpoint_url="http://127.0.0.1:8765", region_name=...)
    runtime = boto3.client("personalize-runtime", endpoint_url="http://127.0.0.1:8765", region_name=...)

`s3://<bucket>/<key>` locations are files under the lake folder (`<lake>/<bucket>/<key>`).
"""

from recsys_platform.local_personalize.server import LocalPersonalize, start_in_background

__all__ = ["LocalPersonalize", "start_in_background"]
