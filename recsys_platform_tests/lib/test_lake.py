import boto3
import pytest
from moto import mock_aws

from recsys_platform.lib.aws_session import AwsSession
from recsys_platform.lib.lake import ImmutableKeyError, LocalLake, S3Lake


@pytest.fixture
def s3_lake(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="shop-lake")
        yield S3Lake(aws=AwsSession(region_name="us-east-1"), bucket="shop-lake", prefix="recsys")


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path):
    if request.param == "local":
        return LocalLake(root=str(tmp_path / "lake"))
    return request.getfixturevalue("s3_lake")


def test_write_read_list_round_trip(lake):
    with lake.open_writer("personalize/items/2026-01-05/run1.csv") as handle:
        handle.write("ITEM_ID,PRICE\ni1,3.5\n".encode())
    lake.put_text("personalize/users/2026-01-05/run1.csv", "USER_ID\nu1\n")
    assert lake.exists("personalize/items/2026-01-05/run1.csv")
    assert not lake.exists("personalize/items/2026-01-06/run1.csv")
    assert lake.read_text("personalize/items/2026-01-05/run1.csv") == "ITEM_ID,PRICE\ni1,3.5\n"
    assert lake.list("personalize/") == [
        "personalize/items/2026-01-05/run1.csv",
        "personalize/users/2026-01-05/run1.csv",
    ]
    assert lake.read_head("personalize/items/2026-01-05/run1.csv", 7) == b"ITEM_ID"
    assert lake.list("personalize/users") == ["personalize/users/2026-01-05/run1.csv"]


def test_existing_key_refuses_different_content_but_accepts_same(lake):
    lake.put_text("snap/a.csv", "x\n1\n")
    assert lake.put_text("snap/a.csv", "x\n1\n") == lake.uri("snap/a.csv")
    with pytest.raises(ImmutableKeyError, match="snap/a.csv"):
        lake.put_text("snap/a.csv", "x\n2\n")
    assert lake.read_text("snap/a.csv") == "x\n1\n"


def test_failed_writer_stores_nothing(lake):
    with pytest.raises(RuntimeError):
        with lake.open_writer("snap/broken.csv") as handle:
            handle.write(b"partial")
            raise RuntimeError("query failed")
    assert not lake.exists("snap/broken.csv")


def test_missing_key_and_bad_keys(lake):
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        lake.read_text("nothing.csv")
    for bad in ("/abs.csv", "a/../b.csv", "a//b.csv"):
        with pytest.raises(ValueError, match="relative path"):
            lake.exists(bad)


def test_uris_and_key_from_uri(tmp_path, s3_lake):
    local = LocalLake(root=str(tmp_path), bucket="b")
    assert local.uri("personalize/x.csv") == "s3://b/personalize/x.csv"
    assert s3_lake.uri("personalize/x.csv") == "s3://shop-lake/recsys/personalize/x.csv"
    assert s3_lake.key_from_uri("s3://shop-lake/recsys/out/a.json.out") == "out/a.json.out"
    with pytest.raises(ValueError, match="not in this lake"):
        s3_lake.key_from_uri("s3://other/x")


def test_folder_uris_name_a_prefix_in_both_flavours(lake):
    # Batch inference output goes to a folder URI; both flavours must accept one.
    uri = lake.folder_uri("personalize/batch-inference/job-1/")
    assert uri == lake.folder_uri("personalize/batch-inference/job-1") == lake.uri("personalize/batch-inference/job-1") + "/"
    assert uri.startswith("s3://") and lake.key_from_uri(uri) == "personalize/batch-inference/job-1/"
    with pytest.raises(ValueError, match="relative path"):
        lake.folder_uri("a/../b/")


def test_local_lake_layout_matches_uri(tmp_path):
    lake = LocalLake(root=str(tmp_path), bucket="b")
    lake.put_text("k/v.txt", "hi")
    assert (tmp_path / "b" / "k" / "v.txt").read_text() == "hi"


def test_large_object_goes_through_multipart_upload(s3_lake, tmp_path):
    big = tmp_path / "big.csv"
    big.write_bytes(b"0123456789" * 1_000_000)  # 10 MB: above boto3's 8 MiB multipart threshold
    s3_lake.put_file("snap/big.csv", big)
    head = boto3.client("s3", region_name="us-east-1").head_object(Bucket="shop-lake", Key="recsys/snap/big.csv")
    assert head["ContentLength"] == 10_000_000
    assert "-" in head["ETag"]  # multipart ETags carry the part count
    assert s3_lake.read_bytes("snap/big.csv") == big.read_bytes()
