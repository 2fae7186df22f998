"""The local Personalize in S3 mode, against moto: it reads imports, batch inference input and data
deletion input from S3 and writes batch inference output there, with the service role it assumes, and
reaches nothing outside the location a request names (and the lake prefix it is allowed)."""

from __future__ import annotations

import json

import pytest

from recsys_platform_tests.local_personalize.conftest import INTERACTIONS_SCHEMA, wait_for, write_interactions

REGION = "eu-central-1"
DATA_ACCOUNT = "444455556666"
BUCKET = "recsys-lake-test"
PREFIX = "recsys/"


class S3Setup:
    def __init__(self, moto, accounts, personalize_server):
        self.moto = moto
        self.accounts = accounts
        self.server = personalize_server

    def client(self, service: str, endpoint: str | None = None):
        import boto3

        sts = boto3.client("sts", endpoint_url=self.moto.endpoint_url, region_name=REGION,
                           aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="base")
        raw = sts.assume_role(RoleArn=self.accounts.platform_role_arn, RoleSessionName="s3-mode-test",
                              ExternalId=self.accounts.external_id)["Credentials"]
        return boto3.client(service, endpoint_url=endpoint or self.moto.endpoint_url, region_name=REGION,
                            aws_access_key_id=raw["AccessKeyId"], aws_secret_access_key=raw["SecretAccessKey"],
                            aws_session_token=raw["SessionToken"])

    def service_requests(self, method: str) -> list[str]:
        """Paths of the S3 requests signed with the Personalize service role's credentials."""
        paths = []
        for request in self.moto.requests:
            role = self.moto.assumed_role(request.access_key_id) if request.access_key_id else None
            if request.service == "s3" and request.method == method and role is not None \
                    and role.role_arn == self.accounts.service_role_arn:
                paths.append(request.path)
        return paths


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from recsys_platform.standins.local_cloud.aws_accounts import provision
    from recsys_platform.standins.local_cloud.moto_standin import MotoStandIn
    from recsys_platform.standins.local_personalize.lakes import S3LakeConfig
    from recsys_platform.standins.local_personalize.server import start_in_background

    moto = MotoStandIn()
    try:
        accounts = provision(moto.endpoint_url, REGION, DATA_ACCOUNT, BUCKET, PREFIX, "s3-mode-test",
                             {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "base"})
        s3 = S3LakeConfig(s3_endpoint_url=moto.endpoint_url, sts_endpoint_url=moto.endpoint_url,
                          iam_endpoint_url=moto.endpoint_url, region=REGION,
                          allowed_locations=(f"s3://{BUCKET}/{PREFIX}",))
        state = tmp_path_factory.mktemp("personalize")
        with start_in_background(state, s3=s3, step_delay=0.02) as server:
            yield S3Setup(moto, accounts, server)
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def personalize(setup):
    return setup.client("personalize", setup.server.endpoint_url)


@pytest.fixture(scope="module")
def s3(setup):
    return setup.client("s3")


@pytest.fixture(scope="module")
def dataset(personalize, s3, tmp_path_factory):
    """An interactions dataset of its own group, and its rows in two objects under a folder prefix."""
    group = personalize.create_dataset_group(name="s3-mode")["datasetGroupArn"]
    wait_for(lambda: personalize.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
    schema = personalize.create_schema(name="s3-mode-interactions", schema=INTERACTIONS_SCHEMA)["schemaArn"]
    arn = personalize.create_dataset(name="interactions", schemaArn=schema, datasetGroupArn=group,
                                     datasetType="Interactions")["datasetArn"]
    wait_for(lambda: personalize.describe_dataset(datasetArn=arn), "dataset")
    lines = write_interactions(tmp_path_factory.mktemp("csv") / "all.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    half = len(rows) // 2
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}snapshot/part-1.csv", Body="\n".join([header, *rows[:half]]) + "\n")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}snapshot/part-2.csv", Body="\n".join([header, *rows[half:]]) + "\n")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}snapshot/README.txt", Body=b"not a CSV: not read")
    # A sibling whose name starts like the folder: a prefix without the slash would take it in.
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}snapshot-old/part-1.csv", Body=b"BROKEN,HEADER\n1,2\n")
    return {"group": group, "dataset": arn, "rows": len(rows)}


def _import(personalize, dataset_arn: str, location: str, name: str, role: str) -> dict:
    arn = personalize.create_dataset_import_job(
        jobName=name, datasetArn=dataset_arn, dataSource={"dataLocation": location}, roleArn=role,
    )["datasetImportJobArn"]
    return wait_for(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=arn), "datasetImportJob")


@pytest.fixture(scope="module")
def trained(setup, personalize, dataset):
    """The folder imported (its CSV objects only), and a popularity model trained on it."""
    job = _import(personalize, dataset["dataset"], f"s3://{BUCKET}/{PREFIX}snapshot/", "folder-import",
                  setup.accounts.service_role_arn)
    assert job["status"] == "ACTIVE", job.get("failureReason")
    solution = personalize.create_solution(name="s3-mode-popular", datasetGroupArn=dataset["group"],
                                           recipeArn="arn:aws:personalize:::recipe/aws-popularity-count",
                                           performAutoTraining=False)["solutionArn"]
    wait_for(lambda: personalize.describe_solution(solutionArn=solution), "solution")
    version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    described = wait_for(lambda: personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion")
    assert described["status"] == "ACTIVE", described.get("failureReason")
    return version


def test_a_folder_import_reads_its_csv_objects_only_with_the_service_role(setup, trained):
    reads = setup.service_requests("GET")
    assert f"/{BUCKET}/{PREFIX}snapshot/part-1.csv" in reads and f"/{BUCKET}/{PREFIX}snapshot/part-2.csv" in reads
    assert not [path for path in reads if "README" in path or "snapshot-old" in path]
    # Downloaded objects live in the state only while a job reads them.
    assert not any((setup.server.state_dir / "s3-transfers").iterdir())
    # The service assumed the role with its own identity, not the caller's.
    assumed = [setup.moto.assumed_role(r.access_key_id) for r in setup.moto.requests
               if r.service == "s3" and r.access_key_id and r.path.endswith("part-1.csv") and r.method == "GET"]
    assert {role.role_arn for role in assumed} == {setup.accounts.service_role_arn}


def test_batch_inference_reads_its_input_and_writes_its_output_in_s3(setup, personalize, s3, trained):
    users = [{"userId": f"u{n}"} for n in range(5)]
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}batch/in/users.json", Body="\n".join(json.dumps(u) for u in users))
    arn = personalize.create_batch_inference_job(
        jobName="s3-mode-batch", solutionVersionArn=trained, numResults=5, roleArn=setup.accounts.service_role_arn,
        jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/{PREFIX}batch/in/users.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/{PREFIX}batch/out/"}},
    )["batchInferenceJobArn"]
    job = wait_for(lambda: personalize.describe_batch_inference_job(batchInferenceJobArn=arn), "batchInferenceJob")
    assert job["status"] == "ACTIVE", job.get("failureReason")
    output = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}batch/out/users.json.out")
    lines = [json.loads(line) for line in output["Body"].read().decode().splitlines()]
    assert [line["input"]["userId"] for line in lines] == [u["userId"] for u in users]
    assert all(len(line["output"]["recommendedItems"]) == 5 for line in lines)
    assert output["ServerSideEncryption"] == "AES256"  # the bucket's default encryption
    assert f"/{BUCKET}/{PREFIX}batch/out/users.json.out" in setup.service_requests("PUT")
    assert [k["Key"] for k in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}batch/out/")["Contents"]] == [
        f"{PREFIX}batch/out/users.json.out"]  # no temporary object left


def test_a_data_deletion_job_reads_its_user_list_from_s3(setup, personalize, s3, dataset, trained):
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}deletions/users.csv", Body=b"USER_ID\nu1\nu2\n")
    arn = personalize.create_data_deletion_job(
        jobName="s3-mode-deletion", datasetGroupArn=dataset["group"], roleArn=setup.accounts.service_role_arn,
        dataSource={"dataLocation": f"s3://{BUCKET}/{PREFIX}deletions/users.csv"},
    )["dataDeletionJobArn"]
    job = wait_for(lambda: personalize.describe_data_deletion_job(dataDeletionJobArn=arn), "dataDeletionJob",
                   done=("COMPLETED", "FAILED"))
    assert job["status"] == "COMPLETED", job.get("failureReason")
    assert job["numDeleted"] == 50  # write_interactions: 25 events for each of u1 and u2


@pytest.mark.parametrize(("location", "role", "message"), [
    (f"s3://{BUCKET}/other/x.csv", "service", "outside the locations this server may access"),
    ("s3://someone-elses-bucket/recsys/x.csv", "service", "outside the locations this server may access"),
    (f"s3://{BUCKET}/{PREFIX}a/../../other/x.csv", "service", "must not contain '.', '..' or empty path segments"),
    (f"s3://{BUCKET}/{PREFIX}a//x.csv", "service", "must not contain '.', '..' or empty path segments"),
    (f"s3://{BUCKET}/{PREFIX}missing.csv", "service", "no such object"),
    (f"s3://{BUCKET}/{PREFIX}empty-folder/", "service", "no CSV objects under this prefix"),
    (f"s3://{BUCKET}/{PREFIX}snapshot/part-1.csv", "platform", "does not allow personalize.amazonaws.com"),
    (f"s3://{BUCKET}/{PREFIX}snapshot/part-1.csv", "missing", "no such role"),
    (f"s3://{BUCKET}/{PREFIX}snapshot/part-1.csv", None, "roleArn is required"),
])
def test_what_personalize_could_not_read_is_refused_when_the_job_is_created(setup, personalize, dataset, location,
                                                                              role, message):
    roles = {"service": setup.accounts.service_role_arn, "platform": setup.accounts.platform_role_arn,
             "missing": f"arn:aws:iam::{DATA_ACCOUNT}:role/no-such-role", None: None}
    request = {"jobName": "refused", "datasetArn": dataset["dataset"], "dataSource": {"dataLocation": location}}
    if roles[role]:
        request["roleArn"] = roles[role]
    with pytest.raises(personalize.exceptions.InvalidInputException, match=message):
        personalize.create_dataset_import_job(**request)


def test_batch_output_outside_the_allowed_prefix_is_refused(setup, personalize, trained):
    with pytest.raises(personalize.exceptions.InvalidInputException, match="outside the locations"):
        personalize.create_batch_inference_job(
            jobName="refused-output", solutionVersionArn=trained, roleArn=setup.accounts.service_role_arn,
            jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/{PREFIX}snapshot/part-1.csv"}},
            jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/elsewhere/"}},
        )


def test_s3_mode_talks_only_to_loopback_and_needs_one_kind_of_lake(tmp_path):
    from recsys_platform.standins.local_personalize.lakes import S3LakeConfig
    from recsys_platform.standins.local_personalize.server import create_server

    with pytest.raises(ValueError, match="must be an http\\(s\\) URL on loopback"):
        S3LakeConfig(s3_endpoint_url="https://s3.eu-central-1.amazonaws.com", sts_endpoint_url="http://127.0.0.1:1")
    config = S3LakeConfig(s3_endpoint_url="http://127.0.0.1:1", sts_endpoint_url="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="exactly one of them"):
        create_server(tmp_path / "state", tmp_path / "lake", s3=config)
    with pytest.raises(ValueError, match="exactly one of them"):
        create_server(tmp_path / "state")


def test_objects_a_crashed_server_downloaded_are_removed_at_the_next_start(tmp_path):
    import os
    import time

    from recsys_platform.standins.local_personalize.lakes import S3Lake, S3LakeConfig

    transfers = tmp_path / "state" / "s3-transfers"
    stale, current = transfers / "transfer-crashed", transfers / "transfer-running"
    for folder in (stale, current):
        folder.mkdir(parents=True)
        (folder / "interactions.csv").write_text("USER_ID,ITEM_ID\nu1,i1\n")
    day_and_a_half_ago = time.time() - 36 * 3600
    os.utime(stale, (day_and_a_half_ago, day_and_a_half_ago))
    S3Lake(S3LakeConfig(s3_endpoint_url="http://127.0.0.1:1", sts_endpoint_url="http://127.0.0.1:1"), tmp_path / "state")
    assert not stale.exists() and (current / "interactions.csv").is_file()  # another server may be reading it
