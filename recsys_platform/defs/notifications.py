"""Run-failure notifications: a failed run of this code location is posted to Slack and/or an SNS topic.

Where to post comes from the environment (lib/deployments.py `failure_notification_config`):
`RECSYS_SLACK_WEBHOOK_URL` (an incoming webhook), or `RECSYS_SLACK_BOT_TOKEN` with `RECSYS_SLACK_CHANNEL`
(chat.postMessage), and/or `RECSYS_SNS_TOPIC_ARN`; `RECSYS_DAGSTER_URL` adds a link to the run. Nothing
set: the sensor runs and posts nothing (each tick says so).

The sensor is Dagster's `run_failure_sensor` with the notifier as a resource, rather than dagster-slack's
`make_slack_on_run_failure_sensor`: that one builds its Slack client when the definitions load (a token
required then, no other endpoint, only the Web API), while this one imports slack_sdk and boto3 only when
a failure is posted, so loading the code location stays cheap, and it can also post to SNS.
"""

from __future__ import annotations

from dagster import (
    ConfigurableResource,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SkipReason,
    run_failure_sensor,
)
from pydantic import Field

from recsys_platform.lib.aws_session import AwsSession

FAILURE_NOTIFIER = "failure_notifier"
SENSOR_NAME = "run_failure_notifications"
# SNS message subjects: at most 100 ASCII characters (API reference, Publish: Subject).
SNS_SUBJECT_LIMIT = 100
ERROR_EXCERPT = 600  # characters of each step's error in a message


class NotificationFailed(RuntimeError):
    """No configured channel accepted the message; the sensor tick fails and the next one tries again."""


class FailureNotifier(ConfigurableResource):
    """Where run failures are posted. Every field is optional; with none set, nothing is posted."""

    slack_webhook_url: str | None = Field(default=None, description="Slack incoming webhook URL (a secret).")
    slack_bot_token: str | None = Field(default=None, description="Slack bot token for chat.postMessage (a secret).")
    slack_channel: str | None = Field(default=None, description="Channel chat.postMessage posts to.")
    slack_api_url: str | None = Field(
        default=None, description="Slack Web API base URL (default slack_sdk's, https://slack.com/api/).")
    sns_topic_arn: str | None = Field(default=None, description="SNS topic to publish to (its region is the ARN's).")
    sns_endpoint_url: str | None = Field(default=None, description="Another SNS endpoint (default AWS's).")
    aws: AwsSession | None = Field(default=None, description="Credentials for SNS (default: the default chain).")
    webserver_base_url: str | None = Field(default=None, description="The Dagster UI's URL, for a link to the run.")

    def channels(self) -> list[str]:
        """The configured channels: `slack-webhook`, `slack-api`, `sns`."""
        found = []
        if self.slack_webhook_url:
            found.append("slack-webhook")
        if self.slack_bot_token and self.slack_channel:
            found.append("slack-api")
        if self.sns_topic_arn:
            found.append("sns")
        return found

    def post(self, subject: str, text: str) -> dict[str, str]:
        """Posts to every configured channel; channel -> "sent" or the error. Raises NotificationFailed
        only when every channel failed (a retry then cannot post twice to one that succeeded)."""
        outcome = {}
        for channel in self.channels():
            try:
                getattr(self, "_post_" + channel.replace("-", "_"))(subject, text)
                outcome[channel] = "sent"
            except Exception as error:  # noqa: BLE001 - any failure of one channel must not stop the others
                outcome[channel] = f"{type(error).__name__}: {error}"
        if outcome and all(result != "sent" for result in outcome.values()):
            raise NotificationFailed("no channel accepted the failure notification: " +
                                     "; ".join(f"{channel}: {result}" for channel, result in outcome.items()))
        return outcome

    def _post_slack_webhook(self, subject: str, text: str) -> None:
        from slack_sdk.webhook import WebhookClient

        response = WebhookClient(self.slack_webhook_url).send(text=f"*{subject}*\n{text}")
        if response.status_code != 200:
            raise RuntimeError(f"Slack webhook answered {response.status_code}: {response.body[:200]}")

    def _post_slack_api(self, subject: str, text: str) -> None:
        from slack_sdk import WebClient

        options = {"base_url": self.slack_api_url} if self.slack_api_url else {}
        # chat_postMessage raises SlackApiError when Slack answers ok: false (e.g. channel_not_found).
        WebClient(token=self.slack_bot_token, **options).chat_postMessage(
            channel=self.slack_channel, text=f"*{subject}*\n{text}")

    def _post_sns(self, subject: str, text: str) -> None:
        aws = self.aws or AwsSession()
        region = self.sns_topic_arn.split(":")[3]
        client = aws.session().client("sns", region_name=region, endpoint_url=self.sns_endpoint_url,
                                      config=aws.client_config())
        subject = subject.encode("ascii", "replace").decode()[:SNS_SUBJECT_LIMIT]
        client.publish(TopicArn=self.sns_topic_arn, Subject=subject, Message=text)


def failure_message(context: RunFailureSensorContext, webserver_base_url: str | None = None) -> tuple[str, str]:
    """(subject, text) of a failed run: job, partition, which steps failed and with what error."""
    run = context.dagster_run
    partition = run.tags.get("dagster/partition") or (
        f"{run.tags['dagster/asset_partition_range_start']}..{run.tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in run.tags else None)
    subject = f"recsys_platform: {run.job_name} failed" + (f" for {partition}" if partition else "")
    lines = [f"Run {run.run_id} of {run.job_name}" + (f", partition {partition}" if partition else "") + " failed."]
    for event in context.get_step_failure_events():
        error = event.event_specific_data.error if event.event_specific_data else None
        detail = error.message.strip() if error is not None else event.message or ""
        # Dagster wraps the asset's own exception: its cause says what went wrong.
        while error is not None and error.cause is not None:
            error = error.cause
            detail = error.message.strip()
        lines.append(f"- step {event.step_key}: {detail[:ERROR_EXCERPT]}")
    if len(lines) == 1 and context.failure_event.message:
        lines.append(context.failure_event.message[:ERROR_EXCERPT])
    if webserver_base_url:
        lines.append(f"{webserver_base_url.rstrip('/')}/runs/{run.run_id}")
    return subject, "\n".join(lines)


def build_run_failure_sensor():
    @run_failure_sensor(
        name=SENSOR_NAME,
        description="Posts every failed run of this code location to Slack and/or SNS (RECSYS_SLACK_WEBHOOK_URL, "
                    "RECSYS_SLACK_BOT_TOKEN + RECSYS_SLACK_CHANNEL, RECSYS_SNS_TOPIC_ARN); off when none is set.",
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
    )
    def run_failure_notifications(context: RunFailureSensorContext, failure_notifier: FailureNotifier):
        if not failure_notifier.channels():
            return SkipReason("no notification channel configured (RECSYS_SLACK_WEBHOOK_URL, RECSYS_SLACK_BOT_TOKEN "
                              "+ RECSYS_SLACK_CHANNEL or RECSYS_SNS_TOPIC_ARN): not posted")
        subject, text = failure_message(context, failure_notifier.webserver_base_url)
        outcome = failure_notifier.post(subject, text)
        for channel, result in outcome.items():
            if result != "sent":
                context.log.warning(f"failure notification to {channel} failed: {result}")
        return None

    return run_failure_notifications
