"""The run-failure sensor posts a failed run of the code location to Slack (webhook and Web API) and SNS,
each only when configured, against loopback stand-ins: a tiny Slack server here, SNS through moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from dagster import DagsterInstance, EnvVar, SkipReason, build_run_status_sensor_context
from moto import mock_aws

from recsys_platform.defs.notifications import SENSOR_NAME, FailureNotifier, NotificationFailed
from recsys_platform.lib.aws_session import AwsSession
from recsys_platform_tests.code_location import platform_definitions

REGION = "eu-west-1"
WEBHOOK_PATH = "/services/T0001/B0001/secret"
TOKEN = "xoxb-test-token"


class SlackStandIn:
    """Slack's incoming webhook and Web API chat.postMessage on loopback; records what was posted."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.fail = False
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    payload = json.loads(body)
                else:  # slack_sdk's WebClient posts form fields
                    from urllib.parse import parse_qsl
                    payload = dict(parse_qsl(body))
                stand_in.posts.append({"path": self.path, "auth": self.headers.get("Authorization"), **payload})
                if stand_in.fail:
                    self._answer(500, "text/plain", b"internal_error")
                elif self.path == WEBHOOK_PATH:
                    self._answer(200, "text/plain", b"ok")
                elif self.path == "/api/chat.postMessage":
                    ok = self.headers.get("Authorization") == f"Bearer {TOKEN}"
                    answer = {"ok": True, "channel": "C1", "ts": "1.0"} if ok else {"ok": False, "error": "invalid_auth"}
                    self._answer(200, "application/json", json.dumps(answer).encode())
                else:
                    self._answer(404, "text/plain", b"no_service")

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack():
    stand_in = SlackStandIn()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def sns(monkeypatch):
    """An SNS topic (moto) with an SQS queue subscribed, to read what was published through boto3."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        topic = boto3.client("sns", region_name=REGION).create_topic(Name="recsys-alerts")["TopicArn"]
        sqs = boto3.client("sqs", region_name=REGION)
        queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        boto3.client("sns", region_name=REGION).subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

        def received() -> list[dict]:
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            return [json.loads(m["Body"]) for m in messages]

        yield topic, received


@pytest.fixture
def failed_run(recsys_home):
    """A real failure of the platform's retraining job: the warehouse has no interactions table yet."""
    defs = platform_definitions()
    instance = DagsterInstance.ephemeral()
    result = defs.resolve_job_def("personalize_retraining_job").execute_in_process(
        partition_key="2026-02-28", instance=instance, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    assert not result.success
    return defs, instance, result


def evaluate(defs, instance, result, notifier):
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    with build_run_status_sensor_context(
        sensor_name=SENSOR_NAME, dagster_instance=instance, dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(), resources={"failure_notifier": notifier},
    ) as context:
        return sensor(context.for_run_failure())


def test_a_failed_run_is_posted_to_slack_and_sns(failed_run, slack, sns):
    defs, instance, result = failed_run
    topic, received = sns
    notifier = FailureNotifier(
        slack_webhook_url=slack.url + WEBHOOK_PATH, slack_bot_token=TOKEN, slack_channel="#recsys-alerts",
        slack_api_url=slack.url + "/api/", sns_topic_arn=topic,
        aws=AwsSession(aws_access_key_id="testing", aws_secret_access_key="testing"),
        webserver_base_url="http://dagster.shop.example",
    )
    assert notifier.channels() == ["slack-webhook", "slack-api", "sns"]
    assert evaluate(defs, instance, result, notifier) is None

    webhook, api = slack.posts
    assert webhook["path"] == WEBHOOK_PATH
    text = webhook["text"]
    assert text.startswith("*recsys_platform: personalize_retraining_job failed for 2026-02-28*")
    assert f"Run {result.run_id} of personalize_retraining_job, partition 2026-02-28 failed." in text
    assert "- step personalize_interactions_csv: " in text and "interactions" in text
    assert f"http://dagster.shop.example/runs/{result.run_id}" in text
    assert api["path"] == "/api/chat.postMessage" and api["auth"] == f"Bearer {TOKEN}"
    assert api["channel"] == "#recsys-alerts" and api["text"] == text
    [message] = received()
    assert message["Subject"] == "recsys_platform: personalize_retraining_job failed for 2026-02-28"
    assert message["Message"] == text.split("\n", 1)[1]


def test_off_when_nothing_is_configured_and_on_from_the_environment(failed_run, slack, monkeypatch):
    defs, instance, result = failed_run
    skipped = evaluate(defs, instance, result, defs.resources["failure_notifier"])
    assert isinstance(skipped, SkipReason) and "no notification channel configured" in skipped.skip_message
    assert slack.posts == []

    # Configured from the environment: the definitions carry the variable's name, never its value.
    monkeypatch.setenv("RECSYS_SLACK_WEBHOOK_URL", slack.url + WEBHOOK_PATH)
    monkeypatch.setenv("RECSYS_DAGSTER_URL", "http://dagster.shop.example")
    configured = platform_definitions().resources["failure_notifier"]
    assert isinstance(configured.slack_webhook_url, EnvVar)
    assert configured.slack_webhook_url.env_var_name == "RECSYS_SLACK_WEBHOOK_URL"  # the URL is read at run time
    assert configured.sns_topic_arn is None and configured.slack_bot_token is None
    assert evaluate(defs, instance, result, configured) is None
    [post] = slack.posts
    assert post["path"] == WEBHOOK_PATH and result.run_id in post["text"]


def test_one_channel_failing_does_not_stop_the_others_but_all_failing_fails_the_tick(failed_run, slack, sns):
    defs, instance, result = failed_run
    topic, received = sns
    slack.fail = True
    both = FailureNotifier(slack_webhook_url=slack.url + WEBHOOK_PATH, sns_topic_arn=topic,
                           aws=AwsSession(aws_access_key_id="testing", aws_secret_access_key="testing"))
    outcome = both.post("subject", "text")
    assert outcome == {"slack-webhook": "RuntimeError: Slack webhook answered 500: internal_error", "sns": "sent"}
    assert evaluate(defs, instance, result, both) is None  # SNS got it: the tick succeeds, Slack's error is logged
    assert sorted(m["Subject"] for m in received()) == [
        "recsys_platform: personalize_retraining_job failed for 2026-02-28", "subject"]
    only_slack = FailureNotifier(slack_webhook_url=slack.url + WEBHOOK_PATH)
    with pytest.raises(NotificationFailed, match="no channel accepted the failure notification: slack-webhook: "):
        only_slack.post("subject", "text")
    wrong_token = FailureNotifier(slack_bot_token="xoxb-wrong", slack_channel="#c", slack_api_url=slack.url + "/api/")
    slack.fail = False
    with pytest.raises(NotificationFailed, match="invalid_auth"):
        wrong_token.post("subject", "text")


def test_loading_the_definitions_with_slack_configured_imports_no_slack_or_aws_library(tmp_path):
    code = (
        "import sys, json\n"
        "import recsys_platform.definitions as d\n"
        "d.defs()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env.update(RECSYS_HOME=str(tmp_path), RECSYS_SLACK_WEBHOOK_URL="http://127.0.0.1:9/hook",
               RECSYS_SNS_TOPIC_ARN="arn:aws:sns:eu-west-1:000000000000:alerts")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert not [m for m in loaded if m.startswith(("slack_sdk", "dagster_slack", "boto3", "botocore", "dagster_aws"))]
    assert "recsys_platform.defs.notifications" in loaded


def test_production_publishes_to_sns_with_the_deployments_aws_session(monkeypatch):
    """On aws, SNS goes through the platform's own session (its cross-account role), like S3 and Personalize."""
    from recsys_platform.lib.deployments import failure_notification_config
    from recsys_platform.settings import PlatformSettings

    environ = {"RECSYS_ENV": "aws", "RECSYS_GA4_TIMEZONE": "Europe/Berlin",
               "RECSYS_SNS_TOPIC_ARN": "arn:aws:sns:eu-central-1:111122223333:recsys-alerts",
               "RECSYS_AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/recsys-platform"}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    config = failure_notification_config(PlatformSettings.from_environment(environ))
    assert config["sns_topic_arn"] == environ["RECSYS_SNS_TOPIC_ARN"]
    assert config["aws"].role_arn == environ["RECSYS_AWS_ROLE_ARN"]
    assert config["slack_webhook_url"] is None and config["slack_bot_token"] is None
    assert FailureNotifier(**config).channels() == ["sns"]
