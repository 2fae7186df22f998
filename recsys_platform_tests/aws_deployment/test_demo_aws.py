"""`recsys-platform demo-aws` (what `make demo-aws` runs), its GA4 half on a small shop. The Personalize
half is `cli/demo.py`'s, tested on the embedded default (personalize/test_demo.py); the aws chain itself
is test_aws_deployment.py's."""

from __future__ import annotations

import os
import re

import pytest

from recsys_platform.cli.main import main


def test_demo_aws_runs_the_ga4_job_on_the_local_cloud_and_shows_what_landed_where(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    monkeypatch.delenv("RECSYS_ENV", raising=False)
    code = main(["demo-aws", "--days", "2", "--events-per-day", "500", "--users", "120", "--items", "60",
                 "--skip-personalize"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "RECSYS_ENV=aws" in out and "AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME=http://127.0.0.1:" in out
    assert "ga4_daily_job over" in out and "as one run" in out
    rows = {m.group(1): int(m.group(2).replace(",", ""))
            for m in re.finditer(r"^\s+([a-z_/0-9]+)\s+([\d,]+)$", out, re.M)}
    for asset in ("ga4_events", "ga4_item_views", "interactions", "product_db/users", "product_db/orders"):
        assert rows[asset] > 0, (asset, out)
    assert rows["product_db/items"] == 60  # the Datastream replica's shop_items, by the contract's names
    assert re.search(r"ga4_events\s+[\d,]+ rows\s+partitioned by event_date, clustered by event_name", out)
    assert "(the platform account's base credentials: AssumeRole)" in out
    # The process's environment is given back: the demo's deployment settings do not leak.
    assert "RECSYS_ENV" not in os.environ and "AWS_ENDPOINT_URL_S3" not in os.environ


def test_demo_aws_clears_only_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    (tmp_path / "aws-demo").mkdir()
    (tmp_path / "aws-demo" / "someone's.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="is not the demo's own folder"):
        main(["demo-aws", "--days", "1"])
    assert (tmp_path / "aws-demo" / "someone's.txt").read_text() == "keep me"
