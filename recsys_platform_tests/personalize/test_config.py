import pytest
import yaml

from recsys_platform.personalize.config import CONFIG_FILE, load_setup, parse_setup
from recsys_platform.personalize.config import SolutionSpec
from recsys_platform.personalize.training import check_training_mode


def _raw():
    return yaml.safe_load(CONFIG_FILE.read_text())


def test_repository_config():
    setup = load_setup()
    assert setup.solution.recipe.endswith("aws-user-personalization-v2")
    assert setup.solution.perform_auto_training is False and setup.solution.event_type is None
    assert setup.comparison["v1"].event_type == "purchase" and setup.comparison["v2"].event_type is None
    assert setup.datasets["interactions"].field_names() == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    assert setup.gate.require_confidence is True


def test_bad_config_names_the_problem(tmp_path):
    raw = _raw()
    raw["holdout"]["percent_users"] = 0
    with pytest.raises(ValueError, match="holdout.percent_users must be in 1..99, got 0"):
        parse_setup(raw, CONFIG_FILE.parent)
    raw = _raw()
    del raw["datasets"]["users"]
    with pytest.raises(ValueError, match="datasets.users is missing"):
        parse_setup(raw, CONFIG_FILE.parent)
    raw = _raw()
    raw["datasets"]["items"]["schema"] = "schemas/nope.json"
    with pytest.raises(ValueError, match="nope.json of datasets.items does not exist"):
        parse_setup(raw, CONFIG_FILE.parent)
    raw = _raw()
    del raw["solution"]["recipe"]
    with pytest.raises(ValueError, match="solution: missing 'recipe'"):
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
