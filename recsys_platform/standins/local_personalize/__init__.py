"""A local stand-in for Amazon Personalize that boto3 reaches through `endpoint_url`.

It speaks Personalize's own wire protocols on one port -- the control plane (`personalize`), the
runtime (`personalize-runtime`: GetRecommendations) and the events service (`personalize-events`:
PutEvents, PutItems, PutUsers) -- keeps its resources on disk, runs imports, trainings, batch inference
and data deletion as background jobs with the service's status lifecycle, and serves recommendations
from real models. The pipeline never imports this package: only boto3 clients talk to it.

    recsys-platform serve --port 8765        # or, in-process: server.start_in_background(...).endpoint_url

`s3://<bucket>/<key>` locations are files under the lake folder (`<lake>/<bucket>/<key>`), or, in S3
mode (`create_server(..., s3=S3LakeConfig(...))`, the aws deployment's local cloud), objects of an S3
endpoint on loopback read and written with each request's `roleArn`, as the service does (`lakes`).

Security. The server has NO AUTHENTICATION: it does not check signatures or credentials (it reads the
region from the Authorization header and nothing else), so anyone who can send it a request can read
and change every resource, every user's data and every model in its state folder. What keeps that to
the account running it:
- it binds to loopback only (127.0.0.1, ::1, localhost) and refuses other addresses at start;
- it answers only requests whose `Host` is a loopback name or address and, when a browser sends an
  `Origin`, only pages served from loopback (403 AccessDeniedException otherwise): a web page cannot
  reach it by DNS rebinding or cross-site requests;
- its state folder is private (folders 0700, files 0600) and models are stored as npz + JSON, never
  pickles, so the files cannot run code when read;
- `s3://` locations resolve inside the lake folder only: symbolic links that leave it are refused; in
  S3 mode only the location's own bucket and key (or prefix) are read, the endpoints must be on loopback,
  and downloaded objects live in a private folder of the state until the work is done;
- requests are bounded (1 MiB bodies, JSON nesting of 32, no chunked bodies, 512 connections at once)
  and errors never show paths on the machine.
Other local users and processes of the same account are trusted: do not run it on a shared machine
where that is not acceptable, and never expose its port (an SSH tunnel or a proxy would undo all of
the above).
"""
