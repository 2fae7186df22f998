"""A local stand-in for Amazon Personalize that boto3 reaches through `endpoint_url`.

It speaks Personalize's own wire protocol, keeps its resources on disk, runs imports, trainings and
batch inference as background jobs with the service's status lifecycle, and serves GetRecommendations
from real models. The pipeline never imports this package: only boto3 clients talk to it.

    recsys-platform serve --port 8765        # or, in-process: server.start_in_background(...).endpoint_url

`s3://<bucket>/<key>` locations are files under the lake folder (`<lake>/<bucket>/<key>`).
"""
