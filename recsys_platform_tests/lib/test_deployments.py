"""One place chooses each deployment's resources; the embedded default never loads BigQuery's libraries."""

import subprocess
import sys

import pytest

from recsys_platform.lib.deployments import resources_for
from recsys_platform.lib.lake import LocalLake, S3Lake
from recsys_platform.settings import PlatformSettings, SettingsError


def test_local_resources_live_under_recsys_home(tmp_path):
    settings = PlatformSettings.from_environment({"RECSYS_HOME": str(tmp_path)})
    resources = resources_for(settings)
    assert type(resources["warehouse"]).__name__ == "DuckDBWarehouse"
    assert resources["warehouse"].warehouse_path == str(tmp_path / "warehouse.duckdb")
    assert isinstance(resources["lake"], LocalLake) and resources["lake"].root == str(tmp_path / "lake")
    assert resources["personalize"].endpoint_url == "http://127.0.0.1:8765"


def test_aws_resources_share_one_session_with_the_configured_role(monkeypatch):
    monkeypatch.setenv("RECSYS_AWS_ROLE_ARN", "arn:aws:iam::222222222222:role/recsys")
    monkeypatch.setenv("RECSYS_LAKE_SSE", "aws:kms")
    settings = PlatformSettings.from_environment({"RECSYS_ENV": "aws", "RECSYS_GA4_TIMEZONE": "America/New_York"})
    resources = resources_for(settings)
    assert type(resources["warehouse"]).__name__ == "BigQueryWarehouse"
    assert isinstance(resources["lake"], S3Lake) and resources["lake"].server_side_encryption == "aws:kms"
    assert resources["lake"].aws is resources["personalize"].aws
    assert resources["personalize"].aws.role_arn == "arn:aws:iam::222222222222:role/recsys"


def test_settings_refuse_what_would_misplace_data():
    with pytest.raises(SettingsError, match="RECSYS_ENV must be one of"):
        PlatformSettings.from_environment({"RECSYS_ENV": "staging"})
    with pytest.raises(SettingsError, match="RECSYS_GA4_TIMEZONE is required when RECSYS_ENV=aws"):
        PlatformSettings.from_environment({"RECSYS_ENV": "aws"})
    with pytest.raises(SettingsError, match="not an IANA time zone"):
        PlatformSettings.from_environment({"RECSYS_GA4_TIMEZONE": "KST"})
    with pytest.raises(SettingsError, match="numeric GA4 property id"):
        PlatformSettings.from_environment({"RECSYS_GA4_PROPERTY_ID": "G-ABC123"})
    with pytest.raises(SettingsError, match="RECSYS_START_DATE must be a date"):
        PlatformSettings.from_environment({"RECSYS_START_DATE": "yesterday"})


def test_unknown_lake_encryption_is_refused():
    from recsys_platform.lib.aws_session import AwsSession

    with pytest.raises(ValueError, match="server_side_encryption must be one of"):
        S3Lake(aws=AwsSession(), bucket="b", server_side_encryption="aws:kms:dsse-typo")


def test_settings_are_read_when_the_definitions_are_built_not_at_import(tmp_path):
    """Importing the code location reads no configuration: a bad setting fails only when definitions are built."""
    code = (
        "import os; os.environ['RECSYS_ENV'] = 'staging'\n"
        "import recsys_platform.definitions as d\n"
        "try:\n    d.defs()\nexcept ValueError as e:\n    print('refused:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert "refused: RECSYS_ENV must be one of" in out.stdout, out.stderr[-2000:]
