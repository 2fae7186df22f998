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
    # The chain's decisions and what the app needs.
    assert "dataset import: interactions FULL (no import into the dataset yet" in out
    assert "FULL: aws-user-personalization-v2 trains FULL only" in out
    assert "filter recsys-platform-serving: arn:aws:personalize:" in out and "trackingId " in out
    # One user with and without the exclude-purchased filter: what it removed was bought.
    filtered = out[out.index("without and with the filter recsys-platform-exclude-purchased"):]
    without, with_filter, removed = (filtered.splitlines()[n].split(":", 1)[1].split("(")[0].split() for n in (1, 2, 3))
    assert len(without) == len(with_filter) == 10 and removed == [i for i in without if i not in with_filter]
    assert set(with_filter) - set(without)  # the filter made room for others
    if removed:
        assert f"({len(removed)} of them bought)" in filtered.splitlines()[3]
    # One user's recommendations before and after three views recorded with PutEvents, no retraining.
    real_time = out[out.index("real time: "):].splitlines()
    viewed = real_time[0].split(" views ")[1].split(" (PutEvents")[0].split()
    before, after = (real_time[n].split(":", 1)[1].split("[")[0].split() for n in (1, 2))
    assert len(viewed) == 3 and not set(viewed) & set(before)
    assert after != before and set(viewed) & set(after) and "no retraining" in real_time[2]
