"""`recsys-platform demo` (what `make demo` runs), its GA4 half on a small shop."""

import re

from recsys_platform.cli.main import main


def test_demo_simulates_runs_the_ga4_job_and_prints_rows_per_asset(recsys_home, tmp_path, capsys, monkeypatch):
    import importlib

    import recsys_platform.definitions

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    # The module-level definitions were resolved for another state folder: the demo must not use them.
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path / "elsewhere"))
    importlib.reload(recsys_platform.definitions)
    monkeypatch.setenv("RECSYS_HOME", str(recsys_home))
    assert main(["demo", "--days", "3", "--events-per-day", "3000", "--skip-personalize"]) == 0
    out = capsys.readouterr().out
    rows = {m.group(1): int(m.group(2).replace(",", ""))
            for m in re.finditer(r"^\s+([a-z_/0-9]+)\s+([\d,]+)$", out, re.M)}
    for asset in ("ga4_events", "ga4_item_views", "ga4_cart_adds", "ga4_purchases", "interactions",
                  "product_db/items", "product_db/orders"):
        assert rows[asset] > 0, (asset, out)
    assert rows["ga4_item_views"] < rows["ga4_events"]
    assert "ga4_daily_job over" in out and "as one run" in out
    # Where each day came from, consent and scrubbed URLs (the simulator plants ~3% and ~1% of each).
    merge = out.split("\nGA4 merge\n", 1)[1].split("\n\n", 1)[0]
    days = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\s+(\d+) day\(s\) from the (\w+) table", merge, re.M)}
    assert sum(days.values()) == 3 and days.get("daily", 0) >= 2, merge
    denied = re.search(r"consent denied \(.*\): ([\d,]+) \(([\d.]+)%\)", merge)
    assert denied and int(denied.group(1).replace(",", "")) > 0 and 0 < float(denied.group(2)) < 10, merge
    scrubbed = re.search(r"allow-list \(e-mails, tokens\.\.\.\): ([\d,]+);", merge)
    assert scrubbed and int(scrubbed.group(1).replace(",", "")) > 0, merge


def test_demo_refuses_a_non_positive_number_of_days(recsys_home):
    import pytest

    with pytest.raises(SystemExit, match="--days"):
        main(["demo", "--days", "0"])
