"""Jobs: the status lifecycle, stopping, failures with reasons, restarts, dead owners, shared state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recsys_platform_tests.local_personalize.conftest import (
    BUCKET,
    Shop,
    make_clients,
    wait_for,
    write_interactions,
)

REPO = Path(__file__).resolve().parents[2]


def _statuses_seen(describe, key: str, timeout: float = 20.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = describe()[key]["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in ("ACTIVE", "CREATE FAILED", "CREATE STOPPED"):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"no final status after {timeout}s: {seen}")


def test_status_lifecycle_is_observable(shop, start_server):
    group, version = shop.trained_group()
    slow, _ = make_clients(start_server(step_delay=0.3).endpoint_url)
    arn = slow.create_solution_version(solutionArn=version["solutionArn"])["solutionVersionArn"]
    seen = _statuses_seen(lambda: slow.describe_solution_version(solutionVersionArn=arn), "solutionVersion")
    assert seen == ["CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE"]
    listed = slow.list_solution_versions(solutionArn=version["solutionArn"])["solutionVersions"]
    assert [v["solutionVersionArn"] for v in listed] == [arn, version["solutionVersionArn"]]
    with pytest.raises(slow.exceptions.ResourceNotFoundException):
        slow.list_solution_versions(solutionArn=version["solutionArn"] + "-missing")


def test_stop_solution_version(shop, start_server):
    _, version = shop.trained_group()
    slow, _ = make_clients(start_server(step_delay=0.5).endpoint_url)
    arn = slow.create_solution_version(solutionArn=version["solutionArn"])["solutionVersionArn"]
    assert slow.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]["status"] == (
        "CREATE PENDING"
    )
    slow.stop_solution_version_creation(solutionVersionArn=arn)
    # as on the service, a version that has not started training stops at once (no CREATE STOPPING)
    stopped = slow.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]
    assert stopped["status"] == "CREATE STOPPED"
    time.sleep(0.7)  # past the step delay: the job must not come back to life
    assert slow.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]["status"] == (
        "CREATE STOPPED"
    )
    with pytest.raises(slow.exceptions.ResourceInUseException, match="CREATE STOPPED"):
        slow.stop_solution_version_creation(solutionVersionArn=arn)
    with pytest.raises(slow.exceptions.ResourceInUseException):
        slow.get_solution_metrics(solutionVersionArn=arn)


def test_stop_while_training(shop, start_server):
    _, version = shop.trained_group()
    slow, _ = make_clients(start_server(step_delay=0.4).endpoint_url)
    arn = slow.create_solution_version(solutionArn=version["solutionArn"])["solutionVersionArn"]
    describe = slow.describe_solution_version
    wait_for(lambda: describe(solutionVersionArn=arn), "solutionVersion", done=("CREATE IN_PROGRESS",))
    slow.stop_solution_version_creation(solutionVersionArn=arn)
    stopped = wait_for(lambda: slow.describe_solution_version(solutionVersionArn=arn), "solutionVersion")
    assert stopped["status"] == "CREATE STOPPED"


def test_jobs_beyond_the_running_limit_wait_in_pending(start_server):
    client, _ = make_clients(start_server(step_delay=0.5, max_running_jobs=1).endpoint_url)
    first = client.create_dataset_group(name="first")["datasetGroupArn"]
    second = client.create_dataset_group(name="second")["datasetGroupArn"]
    wait_for(lambda: client.describe_dataset_group(datasetGroupArn=first), "datasetGroup")
    # unbounded, the second job would have run alongside the first and be past PENDING by now
    waiting = client.describe_dataset_group(datasetGroupArn=second)["datasetGroup"]
    assert waiting["status"] == "CREATE PENDING"
    done = wait_for(lambda: client.describe_dataset_group(datasetGroupArn=second), "datasetGroup")
    assert done["status"] == "ACTIVE"


def test_job_whose_owners_keep_dying_fails_with_a_reason(shop, start_server):
    _, version = shop.trained_group()
    arn = None
    for _ in range(3):  # each server takes the job over, then goes away before finishing it
        server = start_server(step_delay=5.0)
        client, _ = make_clients(server.endpoint_url)
        if arn is None:
            arn = client.create_solution_version(solutionArn=version["solutionArn"])["solutionVersionArn"]
        status = client.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]["status"]
        assert status == "CREATE PENDING"
        server.stop()
    failed = shop.personalize.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]
    assert failed["status"] == "CREATE FAILED"
    assert "exited before it finished, 3 times" in failed["failureReason"]


@pytest.mark.parametrize(
    ("csv_text", "reason"),
    [
        ("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu1,i1,1700000000,view\nu2,i2,yesterday,view\n",
         "row 2: TIMESTAMP 'yesterday' is not a long"),
        ("USER_ID,TIMESTAMP,EVENT_TYPE\nu1,1700000000,view\n", "missing column(s) ITEM_ID"),
        ("USER_ID,ITEM_ID,TIMESTAMP,COLOUR\nu1,i1,1700000000,red\n",
         "column(s) COLOUR are not in the dataset's schema"),
        ("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu1,i1,1700000000,view\n,i2,1700000001,view\n",
         "row 2: USER_ID is empty"),
        ("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n"
         "u1,i1,1700000000,buy,1.5\nu1,i2,1700000001,buy,lots\n",
         "row 2: EVENT_VALUE 'lots' is not a float"),
        ("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu1,i1,1700000000,view,extra\n", "Expected 4 columns"),
        ("USER_ID,ITEM_ID,TIMESTAMP,item_id\nu1,i1,1700000000,i2\n",
         "ITEM_ID, item_id appear more than once"),
    ],
)
def test_bad_csv_fails_the_import_with_a_reason(personalize, shop, lake, csv_text, reason):
    dataset = shop.interactions_dataset(shop.dataset_group())
    (lake / BUCKET).mkdir(parents=True)
    (lake / BUCKET / "bad.csv").write_text(csv_text)
    job = shop.import_csv(dataset, "bad.csv", "bad-import")
    assert job["status"] == "CREATE FAILED"
    assert reason in job["failureReason"]
    assert "bad.csv" in job["failureReason"]


def test_training_minimums_fail_the_version(personalize, shop, lake):
    group = shop.dataset_group()
    dataset = shop.interactions_dataset(group)
    write_interactions(lake / BUCKET / "few-users.csv", users=10, events_per_user=120)  # 1200 rows, 10 users
    shop.import_csv(dataset, "few-users.csv", "few-users")
    version = shop.train(shop.solution(group))
    assert version["status"] == "CREATE FAILED"
    assert "10 users with at least 2 interactions (at least 25 required)" in version["failureReason"]
    # filtering to one event type happens before the minimums are counted
    write_interactions(lake / BUCKET / "enough.csv")
    shop.import_csv(dataset, "enough.csv", "enough")
    assert shop.train(shop.solution(group, name="all-events"))["status"] == "ACTIVE"
    purchases_only = shop.train(shop.solution(group, name="purchases", eventType="purchase"))
    assert purchases_only["status"] == "CREATE FAILED"
    assert "interactions (at least 1000 required)" in purchases_only["failureReason"]


def test_training_without_interactions_fails_with_reason(shop):
    group = shop.dataset_group()
    version = shop.train(shop.solution(group))
    assert version["status"] == "CREATE FAILED"
    assert "no imported interactions" in version["failureReason"]


def test_state_survives_a_restart(state_dir, lake, start_server):
    first = start_server()
    personalize, _ = make_clients(first.endpoint_url)
    _, version = Shop(personalize, lake).trained_group()
    campaign = Shop(personalize, lake).campaign(version["solutionVersionArn"])
    runtime = make_clients(first.endpoint_url)[1]
    before = runtime.get_recommendations(campaignArn=campaign, userId="u2")["itemList"]
    first.stop()

    second = start_server()
    personalize, runtime = make_clients(second.endpoint_url)
    assert personalize.describe_campaign(campaignArn=campaign)["campaign"]["status"] == "ACTIVE"
    assert runtime.get_recommendations(campaignArn=campaign, userId="u2")["itemList"] == before
    metrics = personalize.get_solution_metrics(solutionVersionArn=version["solutionVersionArn"])["metrics"]
    assert "precision_at_25" in metrics


def test_job_left_by_a_stopped_server_is_resumed(shop, start_server):
    _, version = shop.trained_group()
    slow = start_server(step_delay=1.0)
    client, _ = make_clients(slow.endpoint_url)
    arn = client.create_solution_version(solutionArn=version["solutionArn"])["solutionVersionArn"]
    slow.stop()  # leaves the version in CREATE PENDING with no owner
    resumed = shop.wait_for_version(arn)
    assert resumed["status"] == "ACTIVE"


def test_abandoned_job_is_taken_over_without_being_asked_about(shop, start_server):
    _, version = shop.trained_group()
    sweeping, _ = make_clients(start_server(stale_after=0.4).endpoint_url)
    slow = start_server(step_delay=5.0)
    client, _ = make_clients(slow.endpoint_url)
    arn = client.create_solution_version(solutionArn=version["solutionArn"])["solutionVersionArn"]
    slow.stop()
    time.sleep(2.0)  # several sweeps; nobody describes the version meanwhile
    # had only this call taken the job over, it would answer CREATE PENDING
    status = sweeping.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]["status"]
    assert status in ("CREATE IN_PROGRESS", "ACTIVE")
    assert shop.wait_for_version(arn)["status"] == "ACTIVE"


def test_a_server_whose_heartbeat_file_was_removed_keeps_its_jobs(state_dir, shop, start_server):
    _, version = shop.trained_group()
    sweeping = start_server(stale_after=1.0)
    owner = start_server(stale_after=1.0, step_delay=4.0)
    # what a peer does to a server it took for dead, e.g. while the server's process was suspended
    for heartbeat in (state_dir / "owners").glob("*.json"):
        heartbeat.unlink()
    time.sleep(0.6)  # a few heartbeats
    client, _ = make_clients(owner.endpoint_url)
    arn = client.create_solution_version(solutionArn=version["solutionArn"])["solutionVersionArn"]
    time.sleep(2.5)  # at least two sweeps of the other server
    # taken over, the version would have been restarted without the step delay and be ACTIVE by now
    described = make_clients(sweeping.endpoint_url)[0].describe_solution_version(solutionVersionArn=arn)
    assert described["solutionVersion"]["status"] == "CREATE PENDING"


def test_job_of_a_killed_process_is_resumed(tmp_path, shop, start_server):
    _, version = shop.trained_group()
    process = subprocess.Popen(
        [sys.executable, "-m", "recsys_platform.cli.main", "serve", "--home", str(tmp_path), "--port", "0",
         "--step-delay", "30"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        line = process.stdout.readline()
        assert "local Personalize on " in line, line
        endpoint = line.split(" on ", 1)[1].split(" ", 1)[0]
        other_process, _ = make_clients(endpoint)
        arn = other_process.create_solution_version(solutionArn=version["solutionArn"])["solutionVersionArn"]
        assert shop.version(arn)["status"] == "CREATE PENDING"  # its owner is alive: nobody else touches it
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    resumed = shop.wait_for_version(arn)
    assert resumed["status"] == "ACTIVE"


def test_two_servers_share_one_state_folder(personalize, shop, start_server):
    other, _ = make_clients(start_server().endpoint_url)
    group = shop.dataset_group()
    assert other.describe_dataset_group(datasetGroupArn=group)["datasetGroup"]["status"] == "ACTIVE"
    dataset = Shop(other, shop.lake).interactions_dataset(group)
    listed = personalize.list_datasets(datasetGroupArn=group)["datasets"]
    assert [d["datasetArn"] for d in listed] == [dataset]

    # the same name created through both servers at once: exactly one wins
    outcomes: list[str] = []

    def create(client) -> None:
        try:
            client.create_dataset_group(name="race")
            outcomes.append("created")
        except client.exceptions.ResourceAlreadyExistsException:
            outcomes.append("exists")

    threads = [threading.Thread(target=create, args=(client,)) for client in (personalize, other) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] + ["exists"] * 5


def test_serve_refuses_other_hosts(tmp_path):
    from recsys_platform.standins.local_personalize.server import start_in_background

    with pytest.raises(ValueError, match="loopback"):
        start_in_background(state_dir=tmp_path / "s", lake_root=tmp_path / "l", host="0.0.0.0")
    result = subprocess.run(
        [sys.executable, "-m", "recsys_platform.cli.main", "serve", "--host", "192.168.1.10",
         "--home", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2 and "loopback" in result.stderr


def test_serve_refuses_options_that_cannot_work(tmp_path):
    from recsys_platform.standins.local_personalize.server import start_in_background

    # a negative delay would fail every job at its first step; a limit of 0 would never run one
    named = "step_delay must not be negative.*max_running_jobs must be at least 1"
    with pytest.raises(ValueError, match=named):
        start_in_background(
            state_dir=tmp_path / "s", lake_root=tmp_path / "l", step_delay=-1, max_running_jobs=0
        )
    result = subprocess.run(
        [sys.executable, "-m", "recsys_platform.cli.main", "serve",
         "--port", "70000", "--home", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2 and "port must be 0-65535, got 70000" in result.stderr
