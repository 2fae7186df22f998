import dataclasses
import json

import pytest

from recsys_platform.defs.personalize.provisioning import provision
from recsys_platform.defs.personalize.personalize_setup import load_setup
from recsys_platform.defs.personalize.job_waiting import WaitPolicy

FAST = WaitPolicy(poll_seconds=0.05, deadline_seconds=60)


def test_provisioning_is_idempotent(personalize):
    client = personalize.get_client()
    setup = load_setup()
    first = provision(client, setup, FAST)
    assert len(first.created) == 1 + 3 + 3 + 1  # group, schemas, datasets, solution
    second = provision(client, setup, FAST)
    assert second.created == ()
    assert second == dataclasses.replace(first, created=())
    solution = client.describe_solution(solutionArn=first.solution_arn)["solution"]
    assert solution["recipeArn"].endswith("aws-user-personalization-v2")
    assert solution["performAutoTraining"] is False
    assert len(client.list_dataset_groups()["datasetGroups"]) == 1
    assert len(client.list_solutions(datasetGroupArn=first.dataset_group_arn)["solutions"]) == 1
    extra = provision(client, setup, FAST, extra_solutions=tuple(setup.comparison.values()))
    assert len(extra.created) == 2
    solutions = client.list_solutions(datasetGroupArn=first.dataset_group_arn)["solutions"]
    v1 = next(s for s in solutions if s["name"] == setup.comparison["v1"].name)
    assert client.describe_solution(solutionArn=v1["solutionArn"])["solution"]["eventType"] == "purchase"


def test_changed_schema_is_refused_by_name(personalize, tmp_path):
    client = personalize.get_client()
    setup = load_setup()
    provision(client, setup, FAST)
    fields = json.loads(setup.datasets["users"].schema_json())
    fields["fields"].append({"name": "AGE", "type": ["null", "int"]})
    changed_file = tmp_path / "users.json"
    changed_file.write_text(json.dumps(fields))
    changed = dataclasses.replace(
        setup, datasets={**setup.datasets, "users": dataclasses.replace(setup.datasets["users"], schema_file=changed_file)}
    )
    with pytest.raises(ValueError, match="recsys-platform-users in Personalize differs"):
        provision(client, changed, FAST)


def test_changed_solution_settings_are_refused_by_name(personalize):
    client = personalize.get_client()
    setup = load_setup()
    provision(client, setup, FAST)
    auto_training = dataclasses.replace(setup.solution, perform_auto_training=True)
    with pytest.raises(ValueError, match="performAutoTraining: False in Personalize, True in personalize.yaml"):
        provision(client, dataclasses.replace(setup, solution=auto_training), FAST)
    purchases_only = dataclasses.replace(setup.solution, event_type="purchase")
    with pytest.raises(ValueError, match="eventType: None in Personalize, 'purchase' in personalize.yaml"):
        provision(client, dataclasses.replace(setup, solution=purchases_only), FAST)


def test_provisioning_command_twice(recsys_home, monkeypatch, capsys):
    import argparse

    from recsys_platform.cli import provision as cli
    from recsys_platform.standins.local_personalize.server import start_in_background

    server = start_in_background(recsys_home / "personalize", recsys_home / "lake")
    monkeypatch.setenv("RECSYS_PERSONALIZE_ENDPOINT_URL", server.endpoint_url)
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["provision", "--env", "local"])
    assert args.func(args) == 0
    assert "created 8 new resource(s)" in capsys.readouterr().out
    assert args.func(args) == 0
    assert "created 0 new resource(s)" in capsys.readouterr().out
    server.stop()
    assert (recsys_home / "personalize").is_dir()  # the stand-in kept its state under RECSYS_HOME


def test_provisioning_command_says_how_to_start_a_missing_local_personalize(recsys_home, monkeypatch, capsys):
    import argparse

    from recsys_platform.cli import provision as cli
    from recsys_platform.lib.personalize_clients import PersonalizeUnreachable

    monkeypatch.setenv("RECSYS_PERSONALIZE_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["provision", "--env", "local"])
    with pytest.raises(PersonalizeUnreachable, match="make serve"):
        args.func(args)
