import dataclasses
import json

import pytest

from recsys_platform.personalize.bootstrap import bootstrap
from recsys_platform.personalize.config import load_setup
from recsys_platform.personalize.waiting import WaitPolicy

FAST = WaitPolicy(poll_seconds=0.05, deadline_seconds=60)


def test_bootstrap_is_idempotent(personalize):
    client = personalize.get_client()
    setup = load_setup()
    first = bootstrap(client, setup, FAST)
    assert len(first.created) == 1 + 3 + 3 + 1  # group, schemas, datasets, solution
    second = bootstrap(client, setup, FAST)
    assert second.created == ()
    assert second == dataclasses.replace(first, created=())
    solution = client.describe_solution(solutionArn=first.solution_arn)["solution"]
    assert solution["recipeArn"].endswith("aws-user-personalization-v2")
    assert solution["performAutoTraining"] is False
    assert len(client.list_dataset_groups()["datasetGroups"]) == 1
    assert len(client.list_solutions(datasetGroupArn=first.dataset_group_arn)["solutions"]) == 1
    extra = bootstrap(client, setup, FAST, extra_solutions=tuple(setup.comparison.values()))
    assert len(extra.created) == 2
    solutions = client.list_solutions(datasetGroupArn=first.dataset_group_arn)["solutions"]
    v1 = next(s for s in solutions if s["name"] == setup.comparison["v1"].name)
    assert client.describe_solution(solutionArn=v1["solutionArn"])["solution"]["eventType"] == "purchase"


def test_changed_schema_is_refused_by_name(personalize, tmp_path):
    client = personalize.get_client()
    setup = load_setup()
    bootstrap(client, setup, FAST)
    fields = json.loads(setup.datasets["users"].schema_json())
    fields["fields"].append({"name": "AGE", "type": ["null", "int"]})
    changed_file = tmp_path / "users.json"
    changed_file.write_text(json.dumps(fields))
    changed = dataclasses.replace(
        setup, datasets={**setup.datasets, "users": dataclasses.replace(setup.datasets["users"], schema_file=changed_file)}
    )
    with pytest.raises(ValueError, match="recsys-platform-users in Personalize differs"):
        bootstrap(client, changed, FAST)


def test_changed_solution_settings_are_refused_by_name(personalize):
    client = personalize.get_client()
    setup = load_setup()
    bootstrap(client, setup, FAST)
    auto_training = dataclasses.replace(setup.solution, perform_auto_training=True)
    with pytest.raises(ValueError, match="performAutoTraining: False in Personalize, True in personalize.yaml"):
        bootstrap(client, dataclasses.replace(setup, solution=auto_training), FAST)
    purchases_only = dataclasses.replace(setup.solution, event_type="purchase")
    with pytest.raises(ValueError, match="eventType: None in Personalize, 'purchase' in personalize.yaml"):
        bootstrap(client, dataclasses.replace(setup, solution=purchases_only), FAST)


def test_bootstrap_command_twice(recsys_home, monkeypatch, capsys):
    from recsys_platform.personalize import cli
    import argparse

    monkeypatch.delenv("RECSYS_PERSONALIZE_ENDPOINT_URL", raising=False)
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["bootstrap", "--env", "local"])
    assert args.func(args) == 0
    assert "created 8 new resource(s)" in capsys.readouterr().out
    assert args.func(args) == 0
    assert "created 0 new resource(s)" in capsys.readouterr().out
    assert (recsys_home / "personalize").is_dir()  # the stand-in kept its state under RECSYS_HOME
