"""campaignConfig.syncWithLatestSolutionVersion: a campaign named `<solutionArn>/$LATEST` moves to each
new ACTIVE version of its solution by itself; without it a campaign never moves."""

from __future__ import annotations

import time

import pytest

from recsys_platform_tests.local_personalize.conftest import wait_for

SYNC = {"syncWithLatestSolutionVersion": True}


def serving(personalize, campaign: str, version: str, timeout: float = 30.0) -> dict:
    """Wait until the campaign is ACTIVE on `version`."""
    deadline = time.monotonic() + timeout
    while True:
        described = personalize.describe_campaign(campaignArn=campaign)["campaign"]
        if described["status"] == "ACTIVE" and described["solutionVersionArn"] == version:
            return described
        assert time.monotonic() < deadline, f"still {described['status']} on {described['solutionVersionArn']}"
        time.sleep(0.05)


def test_a_synced_campaign_follows_its_solution_and_others_stay(personalize, shop):
    group, first = shop.trained_group()
    solution = first["solutionArn"]
    follower = personalize.create_campaign(
        name="follower", solutionVersionArn=f"{solution}/$LATEST", campaignConfig=SYNC
    )["campaignArn"]
    described = serving(personalize, follower, first["solutionVersionArn"])
    assert described["campaignConfig"]["syncWithLatestSolutionVersion"] is True
    pinned = shop.campaign(first["solutionVersionArn"], name="pinned")

    second = shop.train(solution)
    moved = serving(personalize, follower, second["solutionVersionArn"])
    assert moved["latestCampaignUpdate"]["solutionVersionArn"] == second["solutionVersionArn"]
    assert moved["latestCampaignUpdate"]["status"] == "ACTIVE"
    time.sleep(0.5)
    assert personalize.describe_campaign(campaignArn=pinned)["campaign"]["solutionVersionArn"] == first["solutionVersionArn"]

    # the pinned campaign starts following; the follower stops
    personalize.update_campaign(campaignArn=pinned, solutionVersionArn=f"{solution}/$LATEST", campaignConfig=SYNC)
    serving(personalize, pinned, second["solutionVersionArn"])
    personalize.update_campaign(campaignArn=follower, campaignConfig={"syncWithLatestSolutionVersion": False})
    wait_for(lambda: personalize.describe_campaign(campaignArn=follower), "campaign")
    third = shop.train(solution)
    serving(personalize, pinned, third["solutionVersionArn"])
    time.sleep(0.5)
    assert personalize.describe_campaign(campaignArn=follower)["campaign"]["solutionVersionArn"] == second["solutionVersionArn"]


def test_sync_needs_the_latest_form_and_an_active_version(personalize, shop):
    group, first = shop.trained_group()
    solution = first["solutionArn"]
    with pytest.raises(personalize.exceptions.InvalidInputException, match=r"\$LATEST format"):
        personalize.create_campaign(name="c", solutionVersionArn=first["solutionVersionArn"], campaignConfig=SYNC)
    untrained = shop.solution(group, name="untrained")
    with pytest.raises(personalize.exceptions.InvalidInputException, match="no ACTIVE solution version"):
        personalize.create_campaign(name="c", solutionVersionArn=f"{untrained}/$LATEST", campaignConfig=SYNC)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.create_campaign(name="c", solutionVersionArn=f"{solution}-gone/$LATEST", campaignConfig=SYNC)
    # $LATEST without sync deploys the newest ACTIVE version once, and stays there
    once = personalize.create_campaign(name="once", solutionVersionArn=f"{solution}/$LATEST")["campaignArn"]
    serving(personalize, once, first["solutionVersionArn"])
    second = shop.train(solution)
    assert second["status"] == "ACTIVE"
    time.sleep(0.5)
    assert personalize.describe_campaign(campaignArn=once)["campaign"]["solutionVersionArn"] == first["solutionVersionArn"]


def test_update_trainings_are_followed_too(personalize, shop):
    group, first = shop.trained_group("aws-user-personalization")
    follower = personalize.create_campaign(
        name="follower", solutionVersionArn=f"{first['solutionArn']}/$LATEST", campaignConfig=SYNC
    )["campaignArn"]
    serving(personalize, follower, first["solutionVersionArn"])
    updated = personalize.create_solution_version(solutionArn=first["solutionArn"], trainingMode="UPDATE")
    assert shop.wait_for_version(updated["solutionVersionArn"])["status"] == "ACTIVE"
    serving(personalize, follower, updated["solutionVersionArn"])
