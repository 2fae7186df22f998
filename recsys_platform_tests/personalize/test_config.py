import pytest
import yaml

from recsys_platform.defs.personalize.personalize_setup import CONFIG_FILE, load_setup, parse_setup
from recsys_platform.defs.personalize.personalize_setup import SolutionSpec
from recsys_platform.defs.personalize.solution_version import check_training_mode


def _raw():
    return yaml.safe_load(CONFIG_FILE.read_text())


def test_repository_config():
    setup = load_setup()
    assert setup.solution.recipe.endswith("aws-user-personalization-v2")
    assert setup.solution.perform_auto_training is False and setup.solution.event_type is None
    assert setup.comparison["v1"].event_type == "purchase" and setup.comparison["v2"].event_type is None
    assert setup.datasets["interactions"].field_names() == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    assert setup.gate.require_confidence is True


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw["holdout"].update(percent_users=0), "holdout.percent_users must be in 1..99, got 0"),
    (lambda raw: raw["datasets"].pop("users"), "datasets.users is missing"),
    (lambda raw: raw["datasets"]["items"].update(schema="schemas/nope.json"), "nope.json of datasets.items does not exist"),
    (lambda raw: raw["solution"].pop("recipe"), "solution: missing 'recipe'"),
    (lambda raw: raw.pop("dataset_group"), "dataset_group is missing"),
    (lambda raw: raw["campaign"].pop("name"), "campaign.name is missing"),
    (lambda raw: raw["datasets"]["items"].pop("type"), "datasets.items.type is missing"),
    (lambda raw: raw["holdout"].update(days=0), "holdout.days must be at least 1, got 0"),
    (lambda raw: raw["gate"].update(metric="ndcg"), "gate.metric 'ndcg' is not one of"),
    (lambda raw: raw["gate"].update(metric="coverage"), "gate.metric 'coverage' is not one of"),
    (lambda raw: raw["gate"].update(tolerance=-0.1), "gate.tolerance must be >= 0, got -0.1"),
    (lambda raw: raw["gate"].update(num_results=0), "gate.num_results must be in 1..500, got 0"),
])
def test_bad_config_fails_at_load_time_naming_the_setting(edit, message):
    raw = _raw()
    edit(raw)
    with pytest.raises(ValueError, match=message):
        parse_setup(raw, CONFIG_FILE.parent)


class _Versions:
    def __init__(self, versions):
        self._versions = versions

    def get_paginator(self, operation):
        assert operation == "list_solution_versions"
        versions = self._versions

        class _Pages:
            def paginate(self, **params):
                return [{"solutionVersions": versions}]

        return _Pages()


def test_update_training_needs_a_user_personalization_recipe_and_a_full_version():
    v1_recipe = SolutionSpec("s", "arn:aws:personalize:::recipe/aws-user-personalization")
    v2_recipe = SolutionSpec("s", "arn:aws:personalize:::recipe/aws-user-personalization-v2")
    full = [{"status": "ACTIVE", "trainingMode": "FULL"}]
    check_training_mode(_Versions(full), "arn", v2_recipe, "FULL")
    check_training_mode(_Versions(full), "arn", v1_recipe, "UPDATE")
    with pytest.raises(ValueError, match="uses aws-user-personalization-v2"):
        check_training_mode(_Versions(full), "arn", v2_recipe, "UPDATE")
    with pytest.raises(ValueError, match="needs an ACTIVE FULL version"):
        check_training_mode(_Versions([{"status": "CREATE FAILED", "trainingMode": "FULL"}]), "arn", v1_recipe, "UPDATE")
