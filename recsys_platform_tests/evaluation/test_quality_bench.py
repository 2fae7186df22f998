"""The quality benchmark's own logic, on synthetic data (the real run is `make bench`)."""

import bench.recsys_quality as quality
from recsys_platform_tests.evaluation.helpers import random_log


def test_skips_with_a_message_when_real_data_is_absent(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(quality, "DATA_DIR", tmp_path / "absent")
    result = quality.run(tmp_path / "out", quick=True)
    assert "skipped" in result and "not found" in capsys.readouterr().out


def test_dataset_table_has_every_setting_model_and_comparison():
    log = random_log(n_users=60, per_user=12, purchase_share=0.3)
    result = quality.evaluate_dataset(log, seeds=[0, 1], quick=True, models=quality.MODELS)
    assert set(result) == {"all", "purchase (P)", "purchase (H)"}
    for block in result.values():
        assert set(block["models"]) == set(quality.MODELS)
        row = block["models"][quality.DEFAULT_MODEL]
        assert row["users_scored"] > 0
        low, high = row["normalized_discounted_cumulative_gain_at_25_ci"]
        assert low <= row["normalized_discounted_cumulative_gain_at_25"] <= high
        assert set(block["default_vs_baselines"]) == set(quality.BASELINES)
    table = quality.markdown_table({"synthetic": result})
    assert table.count("\n") == 1 + 3 * len(quality.MODELS)
    assert len(quality.verdicts({"synthetic": result})) == 3 * len(quality.BASELINES)


def test_synthetic_catalogue_touches_every_item():
    log = quality.synthetic_catalogue_log(n_items=500, n_users=50, n_interactions=2000)
    assert len(set(log.item_ids.tolist())) == 500
