import pytest
from dagster import DagsterExecutionInterruptedError

from recsys_platform.defs.personalize.job_waiting import (
    PersonalizeJobDeadlineExceeded,
    PersonalizeJobFailed,
    WaitPolicy,
    attempt_name,
    attempt_number,
    new_attempt_name,
    wait_until_active,
)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def _statuses(*statuses, failure_reason=None):
    remaining = list(statuses)

    def describe():
        status = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return {"status": status, "failureReason": failure_reason}

    return describe


def test_attempt_names_resume_running_jobs_and_retry_after_failure():
    assert attempt_name("recsys-20260228", {}) == ("recsys-20260228", False)
    assert attempt_name("recsys-20260228", {"recsys-20260228": "CREATE IN_PROGRESS"}) == ("recsys-20260228", True)
    assert attempt_name("recsys-20260228", {"recsys-20260228": "ACTIVE"}) == ("recsys-20260228", True)
    assert attempt_name("recsys-20260228", {"recsys-20260228": "CREATE FAILED"}) == ("recsys-20260228-a2", False)
    assert attempt_name(
        "recsys-20260228", {"recsys-20260228": "CREATE FAILED", "recsys-20260228-a2": "CREATE PENDING"}
    ) == ("recsys-20260228-a2", True)
    assert attempt_name("recsys-20260228", {"recsys-20260228": "CREATE STOPPED"}) == ("recsys-20260228-a2", False)
    with pytest.raises(ValueError, match="job name"):
        attempt_name("bad name!", {})


def test_a_new_attempt_follows_the_highest_one_even_when_earlier_ones_are_usable():
    """What a step uses when the day's job is unusable (it loaded or trained on other data)."""
    assert new_attempt_name("recsys-20260228", []) == "recsys-20260228"
    assert new_attempt_name("recsys-20260228", ["recsys-20260228", "recsys-20260227-a3"]) == "recsys-20260228-a2"
    assert new_attempt_name("recsys-20260228", ["recsys-20260228", "recsys-20260228-a4"]) == "recsys-20260228-a5"
    assert attempt_number("recsys-20260228", "recsys-20260228-a12") == 12
    assert attempt_number("recsys-20260228", "recsys-20260228") == 1
    assert attempt_number("recsys-20260228", "recsys-v1-20260228") is None
    with pytest.raises(PersonalizeJobFailed, match="20 attempts exist"):
        new_attempt_name("recsys-20260228", ["recsys-20260228-a20"])


def test_wait_returns_the_active_description_after_polling_with_backoff():
    clock = FakeClock()
    seen = []
    slept = []
    result = wait_until_active(
        _statuses("CREATE PENDING", "CREATE IN_PROGRESS", "CREATE IN_PROGRESS", "CREATE IN_PROGRESS",
                  "CREATE IN_PROGRESS", "ACTIVE"),
        "solution version x", WaitPolicy(poll_seconds=5, deadline_seconds=100, first_poll_seconds=1),
        log=seen.append, sleep=lambda s: (slept.append(s), clock.sleep(s)), clock=clock,
    )
    assert result["status"] == "ACTIVE"
    assert slept == [1, 2, 4, 5, 5]  # doubling from the first interval, capped at poll_seconds
    assert seen == ["solution version x: CREATE PENDING", "solution version x: CREATE IN_PROGRESS",
                    "solution version x: ACTIVE"]


def test_failed_job_raises_with_its_failure_reason():
    clock = FakeClock()
    with pytest.raises(PersonalizeJobFailed, match="CREATE FAILED: Not enough interactions with event type purchase"):
        wait_until_active(
            _statuses("CREATE IN_PROGRESS", "CREATE FAILED",
                      failure_reason="Not enough interactions with event type purchase"),
            "solution version x", WaitPolicy(1, 100), sleep=clock.sleep, clock=clock,
        )


def test_deadline_fails_cleanly_without_stopping_the_job():
    clock = FakeClock()
    stopped = []
    with pytest.raises(PersonalizeJobDeadlineExceeded, match=r"still CREATE IN_PROGRESS after 60s \(deadline 60s\)"):
        wait_until_active(_statuses("CREATE IN_PROGRESS"), "training",
                          WaitPolicy(poll_seconds=25, deadline_seconds=60, first_poll_seconds=25),
                          on_interrupt=lambda: stopped.append(1), sleep=clock.sleep, clock=clock)
    assert clock.now == 60  # the last sleep is cut to the deadline
    assert stopped == []


def test_cancelled_run_stops_the_remote_job():
    clock = FakeClock()
    stopped = []
    calls = []

    def describe():
        calls.append(1)
        if len(calls) == 2:
            raise DagsterExecutionInterruptedError()
        return {"status": "CREATE IN_PROGRESS"}

    with pytest.raises(DagsterExecutionInterruptedError):
        wait_until_active(describe, "training", WaitPolicy(1, 100), on_interrupt=lambda: stopped.append("stop"),
                          sleep=clock.sleep, clock=clock)
    assert stopped == ["stop"]


@pytest.mark.parametrize("field, value, message", [
    ("poll_seconds", 0, "poll_seconds must be positive, got 0"),
    ("first_poll_seconds", 0, "first_poll_seconds must be positive, got 0"),
    ("deadline_seconds", -1, "deadline_seconds must be >= 0, got -1"),
])
def test_wait_policy_refuses_intervals_that_would_never_wait(field, value, message):
    with pytest.raises(ValueError, match=message):
        WaitPolicy(**{field: value})
