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


def test_update_training_needs_a_user_personalization_recipe_and_a_full_version():
    v1_recipe = SolutionSpec("s", "arn:aws:personalize:::recipe/aws-user-personalization")
    v2_recipe = SolutionSpec("s", "arn:aws:personalize:::recipe/aws-user-personalization-v2")
    full = [object()]  # an ACTIVE FULL version
    check_training_mode(v2_recipe, full, "FULL")
    check_training_mode(v1_recipe, full, "UPDATE")
    with pytest.raises(ValueError, match="uses aws-user-personalization-v2"):
        check_training_mode(v2_recipe, full, "UPDATE")
    with pytest.raises(ValueError, match="needs an ACTIVE FULL version"):
        check_training_mode(v1_recipe, [], "UPDATE")


def test_policies_filters_and_tracker_of_the_repository_config():
    setup = load_setup()
    assert setup.imports.full_every_days == 7 and setup.imports.incremental_below_minimum == "full"
    assert setup.training.full_every_days == 7
    assert setup.gate.when_unscorable == "promote" and setup.gate.min_holdout_users == 10
    filters = {f.name: f.expression for f in setup.filters}
    assert filters["recsys-platform-exclude-purchased"] == 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
    assert 'Items.IS_AVAILABLE IN ("False")' in filters[setup.serving_filter]
    assert setup.event_tracker == "recsys-platform-events"


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw["filters"].append({"name": "recent", "expression":
                                        'EXCLUDE ItemID WHERE Interactions.TIMESTAMP > 1700000000'}),
     "filters interactions by EVENT_TYPE only \\(no time condition: 'purchased in the last N days' cannot be expressed"),
    (lambda raw: raw["filters"].append({"name": "colour", "expression": 'EXCLUDE ItemID WHERE Items.COLOUR IN ("red")'}),
     "names Items.COLOUR, which the items schema \\(items.json\\) does not have"),
    (lambda raw: raw["filters"].append({"name": "bad name!", "expression": 'EXCLUDE ItemID WHERE Items.PRICE > 3'}),
     "filter name 'bad name!' must match"),
    (lambda raw: raw["filters"].append(dict(raw["filters"][0])), "two filters share a name"),
    (lambda raw: raw["filters"].extend({"name": f"f{n}", "expression": 'EXCLUDE ItemID WHERE Items.PRICE > 3'}
                                       for n in range(9)), "11 filters; Personalize allows at most 10"),
    (lambda raw: raw["campaign"].update(filter="nope"), "campaign.filter 'nope' is not one of filters"),
    (lambda raw: raw["gate"].update(when_unscorable="maybe"), "gate.when_unscorable must be one of"),
    (lambda raw: raw["gate"].update(min_holdout_users=0), "gate.min_holdout_users must be at least 1"),
    (lambda raw: raw["imports"].update(full_every_days=0), "imports.full_every_days must be at least 1"),
    (lambda raw: raw["imports"].update(full_on_weekdays=["caturday"]), "imports.full_on_weekdays: 'caturday'"),
    (lambda raw: raw["imports"].update(incremental_below_minimum="wait"), "incremental_below_minimum must be one of"),
    (lambda raw: raw["training"].update(full_every_days=-1), "training.full_every_days must be at least 1"),
])
def test_bad_policies_and_filters_fail_at_load_time_naming_the_setting(edit, message):
    raw = _raw()
    edit(raw)
    with pytest.raises(ValueError, match=message):
        parse_setup(raw, CONFIG_FILE.parent)


def test_boolean_fields_cannot_be_filtered(tmp_path):
    import json
    import shutil

    raw = _raw()
    shutil.copytree(CONFIG_FILE.parent / "schemas", tmp_path / "schemas")
    items = json.loads((tmp_path / "schemas" / "items.json").read_text())
    items["fields"].append({"name": "IN_STOCK", "type": ["null", "boolean"]})
    (tmp_path / "schemas" / "items.json").write_text(json.dumps(items))
    raw["filters"].append({"name": "stock", "expression": 'EXCLUDE ItemID WHERE Items.IN_STOCK IN ("false")'})
    with pytest.raises(ValueError, match="tests the boolean Items.IN_STOCK; Personalize cannot filter on boolean"):
        parse_setup(raw, tmp_path)
