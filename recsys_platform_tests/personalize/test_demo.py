import datetime as dt

from dagster import DagsterInstance

from recsys_platform.cli.demo import _run_personalize
from recsys_platform_tests.code_location import platform_definitions
from recsys_platform_tests.personalize.synthetic_shop import TRAINING_DATE, fill_warehouse, synthetic_interactions


def test_demo_prints_chain_recommendations_and_the_v1_v2_table(recsys_home, local_personalize, monkeypatch, capsys):
    fill_warehouse(recsys_home, synthetic_interactions(n_users=150, n_events=9000, seed=3))
    monkeypatch.setenv("RECSYS_PERSONALIZE_ENDPOINT_URL", local_personalize.endpoint_url)
    code = _run_personalize(platform_definitions(), DagsterInstance.ephemeral(), dt.date.fromisoformat(TRAINING_DATE))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "snapshot interactions" in out and "normalized_discounted_cumulative_gain_at_25" in out
    assert "campaign: first deployment" in out
    recommendation_lines = [line for line in out.splitlines() if line.startswith("  u") and " ms]" in line]
    assert len(recommendation_lines) == 3 and all(len(line.split(":")[1].split()) >= 10 for line in recommendation_lines)
    assert "| Metric | Ver1 (purchases only) | Ver2 (all events) | Change |" in out
