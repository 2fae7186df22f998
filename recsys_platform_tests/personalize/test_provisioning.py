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
    assert len(first.created) == 1 + 3 + 3 + 1 + 2 + 1  # group, schemas, datasets, solution, filters, tracker
    second = provision(client, setup, FAST)
    assert second.created == ()
    assert second == dataclasses.replace(first, created=())
    # The filters of personalize.yaml, ACTIVE with its expressions, and the event tracker with its trackingId.
    listed = {f["name"]: f["filterArn"] for f in client.list_filters(datasetGroupArn=first.dataset_group_arn)["Filters"]}
    assert listed == first.filter_arns and set(listed) == {f.name for f in setup.filters}
    for spec in setup.filters:
        described = client.describe_filter(filterArn=listed[spec.name])["filter"]
        assert described["status"] == "ACTIVE" and described["filterExpression"] == spec.expression
    tracker = client.describe_event_tracker(eventTrackerArn=first.event_tracker_arn)["eventTracker"]
    assert tracker["name"] == "recsys-platform-events" and tracker["trackingId"] == first.tracking_id
    assert tracker["datasetGroupArn"] == first.dataset_group_arn
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
    assert "created 11 new resource(s)" in capsys.readouterr().out
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


def test_a_filter_that_drifted_is_refused_by_name(personalize):
    """Filters are immutable: one of the same name with another expression would silently keep serving
    the old expression."""
    client = personalize.get_client()
    setup = load_setup()
    arns = provision(client, dataclasses.replace(setup, filters=()), FAST)
    client.create_filter(name="recsys-platform-serving", datasetGroupArn=arns.dataset_group_arn,
                         filterExpression='EXCLUDE ItemID WHERE Items.IS_AVAILABLE IN ("False")')
    with pytest.raises(ValueError, match="filter recsys-platform-serving in Personalize differs from personalize.yaml "
                                         r"\(expression 'EXCLUDE ItemID WHERE Items.IS_AVAILABLE IN \(\"False\"\)' in "
                                         "Personalize, .*filters are immutable: give it a new name"):
        provision(client, setup, FAST)
    # Renamed in personalize.yaml, it is created beside the old one.
    renamed = dataclasses.replace(setup.filters[1], name="recsys-platform-serving-2")
    arns = provision(client, dataclasses.replace(setup, filters=(setup.filters[0], renamed),
                                                 serving_filter=renamed.name), FAST)
    assert set(arns.filter_arns) == {"recsys-platform-exclude-purchased", "recsys-platform-serving-2"}


def test_an_event_tracker_of_another_name_is_refused(personalize):
    client = personalize.get_client()
    setup = load_setup()
    arns = provision(client, dataclasses.replace(setup, event_tracker=None), FAST)
    assert arns.tracking_id is None
    client.create_event_tracker(name="someone-elses", datasetGroupArn=arns.dataset_group_arn)
    with pytest.raises(ValueError, match="has the event tracker someone-elses, not recsys-platform-events of "
                                         "personalize.yaml; a dataset group has only one"):
        provision(client, setup, FAST)
