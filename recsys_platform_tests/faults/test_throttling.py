"""Throttling (ThrottlingException, 429, S3's SlowDown) and 5xx answers from Personalize and from S3, injected
by a proxy between boto3 and the stand-ins (proxy.py). The platform's clients use botocore's adaptive retries
(lib/aws_session.py): a burst is absorbed and the step finishes; a persistent failure fails the step with the
service's error and leaves no half-written lake object and no second job. S3's 403 on HEAD (a role without
s3:ListBucket), which moto never sends, is injected the same way.

Personalize is the local one in its own process, S3 is moto's server (a thread) on loopback; the steps are
the code location's own, run in the test process with the proxy as their endpoint.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter

import boto3
import pytest
from botocore.exceptions import ClientError

from recsys_platform.lib.aws_session import AwsSession
from recsys_platform.lib.deployments import LOCAL_REGION, LOCAL_SERVICE_ROLE
from recsys_platform.lib.handoff_io_manager import LakeHandoffIOManager
from recsys_platform.lib.lake import S3Lake
from recsys_platform.lib.personalize_clients import PersonalizeResource
from recsys_platform_tests.faults import harness
from recsys_platform_tests.faults.in_process import run_job
from recsys_platform_tests.faults.proxy import FaultProxy
from recsys_platform_tests.personalize.synthetic_shop import fill_warehouse, synthetic_interactions

TRAINING = "personalize_retraining_job"
SNAPSHOTS = ["personalize_interactions_csv", "personalize_items_csv", "personalize_users_csv"]
CHAIN = [*SNAPSHOTS, "personalize_dataset_import", "personalize_solution_version"]
FAST = {"poll_seconds": 0.2}
WAITS = {"ops": {"personalize_dataset_import": {"config": FAST}, "personalize_solution_version": {"config": FAST}}}
# An operator's retry budget for the persistent cases (the default, 10 adaptive attempts, backs off ~1 min).
FEW_ATTEMPTS = 3


def personalize_with(endpoint_url: str, max_attempts: int) -> PersonalizeResource:
    """The deployment's Personalize resource with another retry budget (AwsSession.max_attempts)."""
    return PersonalizeResource(
        aws=AwsSession(region_name=LOCAL_REGION, aws_access_key_id="local", aws_secret_access_key="local",
                       max_attempts=max_attempts),
        endpoint_url=endpoint_url, service_role_arn=LOCAL_SERVICE_ROLE)


@pytest.fixture
def personalize_behind_proxy(tmp_path, monkeypatch):
    """The local Personalize in its own process (`recsys-platform serve`), behind the proxy."""
    home = tmp_path / "recsys"
    fill_warehouse(home, synthetic_interactions())
    monkeypatch.setenv("RECSYS_HOME", str(home))
    with harness.personalize_server(home, tmp_path / "serve.log") as server:
        proxy = FaultProxy(server.endpoint_url, "personalize")
        monkeypatch.setenv("RECSYS_PERSONALIZE_ENDPOINT_URL", proxy.url)
        client = boto3.client("personalize", endpoint_url=server.endpoint_url, region_name=LOCAL_REGION,
                              aws_access_key_id="local", aws_secret_access_key="local")
        yield home, proxy, client
        proxy.stop()


def job_names(client) -> Counter:
    """Every import job and solution version Personalize holds, by name (straight to the stand-in)."""
    names: Counter = Counter()
    for group in client.list_dataset_groups()["datasetGroups"]:
        for dataset in client.list_datasets(datasetGroupArn=group["datasetGroupArn"])["datasets"]:
            names.update(j["jobName"] for j in client.list_dataset_import_jobs(datasetArn=dataset["datasetArn"],
                                                                              maxResults=100)["datasetImportJobs"])
        for solution in client.list_solutions(datasetGroupArn=group["datasetGroupArn"])["solutions"]:
            for version in client.list_solution_versions(solutionArn=solution["solutionArn"])["solutionVersions"]:
                names[client.describe_solution_version(
                    solutionVersionArn=version["solutionVersionArn"])["solutionVersion"]["name"]] += 1
    return names


def extra_jobs(names: Counter) -> int:
    """Jobs started more than once, or as a later attempt (`-a2`) of a day's job."""
    return sum(n - 1 for n in names.values()) + sum(1 for name in names if re.search(r"-a\d+$", name))


def test_personalize_throttling_and_5xx_bursts_are_absorbed_a_persistent_one_fails_the_step(
        personalize_behind_proxy, tmp_path_factory):
    home, proxy, client = personalize_behind_proxy
    burst = {"CreateDatasetImportJob": ("throttle", 2), "DescribeDatasetImportJob": ("429", 2),
             "CreateSolutionVersion": ("503", 2), "DescribeSolutionVersion": ("500", 2)}
    for operation, (error, times) in burst.items():
        proxy.fail(operation, error, times)
    absorbed = run_job(TRAINING, "2026-02-28", assets=CHAIN, run_config=WAITS)
    assert absorbed.success, absorbed.failure_message()
    # Each chosen operation was refused as many times as asked, then got through.
    assert {op: proxy.failed[op] for op in burst} == {op: times for op, (_, times) in burst.items()}
    assert all(proxy.forwarded[op] >= 1 for op in burst), proxy.forwarded
    names = job_names(client)
    assert names == Counter({"recsys-interactions-20260228": 1, "recsys-items-20260228": 1,
                             "recsys-users-20260228": 1, "recsys-20260228": 1}), names
    harness.record_fault(tmp_path_factory, "Personalize throttling/429/5xx burst (2 each)",
                         "proxy: Create/Describe DatasetImportJob, Create/Describe SolutionVersion",
                         "retried by botocore (adaptive); the chain finished", 0, extra_jobs(names),
                         absorbed.seconds)

    # Persistent: the next day's training is refused every time.
    proxy.clear()
    proxy.fail("CreateSolutionVersion", "503", None)
    refused = run_job(TRAINING, "2026-02-27", assets=CHAIN, run_config=WAITS,
                      resources={"personalize": personalize_with(proxy.url, FEW_ATTEMPTS)})
    assert not refused.success
    message = refused.failure_message()
    assert "ServiceUnavailable" in message and "CreateSolutionVersion" in message, message
    assert proxy.failed["CreateSolutionVersion"] == FEW_ATTEMPTS
    assert "recsys-20260227" not in job_names(client)
    # The service is back: the next run of the partition's failed step trains the day once.
    proxy.clear()
    recovered = run_job(TRAINING, "2026-02-27", assets=["personalize_solution_version"], run_config=WAITS)
    assert recovered.success, recovered.failure_message()
    names = job_names(client)
    assert names["recsys-20260227"] == 1 and names["recsys-interactions-20260227"] == 1
    harness.record_fault(tmp_path_factory, "Personalize 503 persistent (CreateSolutionVersion)",
                         f"proxy: every CreateSolutionVersion ({FEW_ATTEMPTS} attempts)",
                         "step failed with ServiceUnavailable naming CreateSolutionVersion; no version; next run "
                         "trained once", 0, extra_jobs(names), recovered.seconds)
    assert extra_jobs(names) == 0

    # A lost response: Personalize started the training, the client saw a 500; botocore's retry is refused
    # as a duplicate, and the step resumes the version it started: one training, in the same run.
    proxy.fail("CreateSolutionVersion", "500", 1, after_forwarding=True)
    lost_response = run_job(TRAINING, "2026-02-26", assets=CHAIN, run_config=WAITS)
    assert proxy.forwarded["CreateSolutionVersion"] >= 1
    assert lost_response.success, lost_response.failure_message()
    names = job_names(client)
    harness.record_fault(tmp_path_factory, "Personalize 500 after the create was applied (lost response)",
                         "proxy: first CreateSolutionVersion forwarded, its answer replaced by 500",
                         "step succeeded: botocore's retry was refused (ResourceInUseException) and the step "
                         "resumed the version it had started: one version", 0, extra_jobs(names),
                         lost_response.seconds)
    assert names["recsys-20260226"] == 1 and extra_jobs(names) == 0


def test_a_lost_create_response_is_absorbed(personalize_behind_proxy):
    home, proxy, client = personalize_behind_proxy
    proxy.fail("CreateDatasetImportJob", "500", 1, after_forwarding=True)
    proxy.fail("CreateSolutionVersion", "500", 1, after_forwarding=True)
    outcome = run_job(TRAINING, "2026-02-28", assets=CHAIN, run_config=WAITS)
    assert outcome.success, outcome.failure_message()
    assert proxy.forwarded["CreateDatasetImportJob"] >= 1 and proxy.forwarded["CreateSolutionVersion"] >= 1
    names = job_names(client)
    assert names["recsys-20260228"] == 1 and extra_jobs(names) == 0


# --- S3 -----------------------------------------------------------------------------------------------------

@pytest.fixture
def s3_behind_proxy(tmp_path, monkeypatch):
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    upstream = f"http://{host}:{port}"
    proxy = FaultProxy(upstream, "s3")
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": proxy.url}.items():
        monkeypatch.setenv(name, value)
    direct = boto3.client("s3", endpoint_url=upstream, region_name="us-east-1")
    direct.create_bucket(Bucket="shop-lake")
    yield proxy, direct
    proxy.stop()
    moto.stop()


def s3_lake(max_attempts: int = 10) -> S3Lake:
    return S3Lake(aws=AwsSession(region_name="us-east-1", max_attempts=max_attempts), bucket="shop-lake",
                  prefix="recsys")


def in_flight_uploads(direct) -> list:
    return direct.list_multipart_uploads(Bucket="shop-lake").get("Uploads", [])


def test_s3_slowdown_and_5xx_bursts_are_absorbed_a_persistent_one_leaves_no_partial_object(
        s3_behind_proxy, tmp_path, monkeypatch, tmp_path_factory):
    proxy, direct = s3_behind_proxy
    home = tmp_path / "recsys"
    fill_warehouse(home, synthetic_interactions())
    monkeypatch.setenv("RECSYS_HOME", str(home))

    def snapshot(lake: S3Lake):
        return run_job(TRAINING, "2026-02-28", assets=["personalize_interactions_csv"],
                       resources={"lake": lake, "handoff_io_manager": LakeHandoffIOManager(lake=lake)})

    # A burst on the snapshot step's writes and reads: absorbed, the objects are whole.
    burst = {"PutObject": ("slowdown", 2), "HeadObject": ("s3-500", 1), "GetObject": ("503", 1)}
    for operation, (error, times) in burst.items():
        proxy.fail(operation, error, times)
    lake = s3_lake()
    absorbed = snapshot(lake)
    assert absorbed.success, absorbed.failure_message()
    assert {op: proxy.failed[op] for op in burst} == {op: times for op, (_, times) in burst.items()}
    written = absorbed.materialization("personalize_interactions_csv").metadata
    key = lake.key_from_uri(written["uri"].value)
    body = lake.read_bytes(key)
    assert hashlib.sha256(body).hexdigest() == written["sha256"].value
    # Snapshots are immutable; hand-offs are replaced by each run (by design), so only snapshots are compared.
    stored = {k: lake.read_bytes(k) for k in lake.list("personalize/")}
    harness.record_fault(tmp_path_factory, "S3 SlowDown/5xx burst during the snapshot",
                         "proxy: PutObject x2 SlowDown, HeadObject x1 500, GetObject x1 503",
                         "retried by botocore (adaptive); snapshot step succeeded, CSV whole", 0, 0,
                         absorbed.seconds)

    # Persistent SlowDown on every write: the step fails with S3's error; no new object, nothing in flight.
    proxy.clear()
    proxy.fail("PutObject", "slowdown", None)
    refused = snapshot(s3_lake(FEW_ATTEMPTS))
    assert not refused.success
    assert "SlowDown" in refused.failure_message(), refused.failure_message()
    assert {k: lake.read_bytes(k) for k in lake.list("personalize/")} == stored
    assert not in_flight_uploads(direct)
    proxy.clear()
    recovered = snapshot(s3_lake())
    assert recovered.success, recovered.failure_message()
    lost = sum(1 for k, v in stored.items() if lake.read_bytes(k) != v)
    harness.record_fault(tmp_path_factory, "S3 SlowDown persistent (PutObject)",
                         f"proxy: every PutObject ({FEW_ATTEMPTS} attempts)",
                         "step failed with SlowDown; no object written; next run wrote the snapshot", lost, 0,
                         recovered.seconds)
    assert lost == 0

    # A large object goes up in parts: a burst of 500s on parts is absorbed; a persistent one aborts the
    # upload (no object, no upload left in flight).
    big = tmp_path / "big.csv"
    big.write_bytes(os.urandom(9 * 1024 * 1024))  # above boto3's 8 MiB multipart threshold
    proxy.fail("UploadPart", "s3-500", 2)
    s3_lake().put_file("personalize/big/burst.csv", big)
    assert lake.read_bytes("personalize/big/burst.csv") == big.read_bytes()
    proxy.clear()
    proxy.fail("UploadPart", "s3-500", None)
    with pytest.raises((ClientError, Exception), match="InternalError"):
        s3_lake(FEW_ATTEMPTS).put_file("personalize/big/persistent.csv", big)
    assert not lake.exists("personalize/big/persistent.csv")
    assert not in_flight_uploads(direct), in_flight_uploads(direct)
    proxy.clear()
    s3_lake().put_file("personalize/big/persistent.csv", big)
    assert lake.read_bytes("personalize/big/persistent.csv") == big.read_bytes()
    harness.record_fault(tmp_path_factory, "S3 500 on multipart parts (burst, then persistent)",
                         "proxy: UploadPart x2, then every UploadPart",
                         "burst absorbed; persistent: put_file raised InternalError, upload aborted (none in "
                         "flight, no object); retry stored it whole", 0, 0, None)



def test_a_403_on_head_fails_the_snapshot_naming_the_missing_permission_and_writes_nothing(
        s3_behind_proxy, tmp_path, monkeypatch, tmp_path_factory):
    """S3 answers 403, not 404, for a missing key when the role lacks s3:ListBucket: the step must say which
    permission is missing instead of failing with a bare "Forbidden", and must not write the snapshot blind."""
    proxy, direct = s3_behind_proxy
    home = tmp_path / "recsys"
    fill_warehouse(home, synthetic_interactions())
    monkeypatch.setenv("RECSYS_HOME", str(home))
    lake = s3_lake()

    def stored() -> dict[str, str]:  # moto's state is per process: other tests' objects may be there
        return {o["Key"]: o["ETag"] for o in direct.list_objects_v2(Bucket="shop-lake").get("Contents", [])}

    before = stored()
    proxy.fail("HeadObject", "s3-403", None)
    refused = run_job(TRAINING, "2026-02-28", assets=["personalize_interactions_csv"],
                      resources={"lake": lake, "handoff_io_manager": LakeHandoffIOManager(lake=lake)})
    assert not refused.success
    message = refused.failure_message()
    assert "s3:ListBucket on arn:aws:s3:::shop-lake" in message and "(403)" in message, message
    assert proxy.failed["HeadObject"] >= 1 and not proxy.forwarded["PutObject"]
    assert stored() == before
    proxy.clear()
    recovered = run_job(TRAINING, "2026-02-28", assets=["personalize_interactions_csv"],
                        resources={"lake": lake, "handoff_io_manager": LakeHandoffIOManager(lake=lake)})
    assert recovered.success, recovered.failure_message()
    harness.record_fault(tmp_path_factory, "S3 403 on HEAD (no s3:ListBucket)", "proxy: every HeadObject 403",
                         "snapshot step failed naming s3:ListBucket; nothing written; next run succeeded", 0, 0,
                         recovered.seconds)
