"""Run config shared by every step that waits on Personalize."""

from dagster import Config
from pydantic import Field

from recsys_platform.defs.personalize.job_waiting import WaitPolicy


class PersonalizeWaitConfig(Config):
    poll_seconds: float = Field(
        default=60.0, description="Longest interval between status checks (checks start at 1s and double)."
    )
    deadline_seconds: float = Field(default=6 * 3600.0, description="The step fails if the job is not done by then.")

    def policy(self) -> WaitPolicy:
        return WaitPolicy(poll_seconds=self.poll_seconds, deadline_seconds=self.deadline_seconds,
                          first_poll_seconds=min(1.0, self.poll_seconds))
