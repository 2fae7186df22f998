"""The IAM policy evaluation doctor falls back on where IAM's simulator cannot be called (moto has none):
Deny over Allow, wildcards, NotAction/NotResource, string conditions on keys it knows, and conditions on
other keys reported as not evaluated, never guessed."""

from recsys_platform.lib.prerequisites import ALLOWED, DENIED, IMPLICIT, evaluate, evaluate_all

ROLE = "arn:aws:iam::123456789012:role/service-role/recsys-personalize"
PASSED = {"iam:passedtoservice": "personalize.amazonaws.com"}


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_wildcards_in_actions_ignore_case_and_in_resources_do_not():
    document = policy({"Effect": "Allow", "Action": "IAM:Pass*",
                       "Resource": "arn:aws:iam::*:role/service-role/*"})
    assert evaluate(document, "iam:PassRole", ROLE, {}) == (ALLOWED, set())
    assert evaluate(document, "iam:PassRole", ROLE.replace("service-role", "Service-Role"), {})[0] == IMPLICIT


def test_an_explicit_deny_wins_over_any_allow():
    allow = policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
    deny = policy({"Effect": "Deny", "NotAction": ["s3:*"], "Resource": ROLE})
    assert evaluate_all([allow, deny], "iam:PassRole", ROLE, {})[0] == DENIED
    assert evaluate_all([allow, deny], "s3:GetObject", ROLE, {})[0] == ALLOWED


def test_passed_to_service_is_evaluated_and_other_condition_keys_are_reported():
    def allow(condition):
        return policy({"Effect": "Allow", "Action": "iam:PassRole", "Resource": ROLE, "Condition": condition})

    assert evaluate(allow({"StringEquals": {"iam:PassedToService": "personalize.amazonaws.com"}}),
                    "iam:PassRole", ROLE, PASSED) == (ALLOWED, set())
    assert evaluate(allow({"StringLike": {"iam:PassedToService": "personalize.*"}}),
                    "iam:PassRole", ROLE, PASSED) == (ALLOWED, set())
    assert evaluate(allow({"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com"]}}),
                    "iam:PassRole", ROLE, PASSED)[0] == IMPLICIT
    assert evaluate(allow({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}),
                    "iam:PassRole", ROLE, PASSED) == (ALLOWED, {"aws:RequestedRegion"})


def test_a_deny_whose_condition_cannot_be_evaluated_counts_as_a_deny():
    document = policy({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
                      {"Effect": "Deny", "Action": "iam:PassRole", "Resource": "*",
                       "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}})
    assert evaluate(document, "iam:PassRole", ROLE, PASSED) == (DENIED, {"aws:MultiFactorAuthPresent"})


def test_resource_policies_count_only_statements_naming_the_service():
    bucket = policy({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/x"},
                     "Action": "s3:*", "Resource": "arn:aws:s3:::lake/*"},
                    {"Effect": "Allow",
                     "Principal": {"Service": ["ec2.amazonaws.com", "personalize.amazonaws.com"]},
                     "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::lake/private/*"})
    service = "personalize.amazonaws.com"
    assert evaluate(bucket, "s3:GetObject", "arn:aws:s3:::lake/recsys/a.csv", {}, service)[0] == ALLOWED
    assert evaluate(bucket, "s3:GetObject", "arn:aws:s3:::lake/private/a.csv", {}, service)[0] == IMPLICIT
    assert evaluate(bucket, "s3:PutObject", "arn:aws:s3:::lake/recsys/a.csv", {}, service)[0] == IMPLICIT


def test_the_policies_doctor_prints_pass_its_own_checks(monkeypatch, capsys):
    import json

    from recsys_platform.cli.main import main

    monkeypatch.setenv("RECSYS_LAKE_BUCKET", "shop-lake")
    monkeypatch.setenv("RECSYS_LAKE_PREFIX", "recsys/")
    monkeypatch.setenv("RECSYS_PERSONALIZE_SERVICE_ROLE_ARN", ROLE)
    assert main(["doctor", "--policies", "--no-dotenv"]) == 0
    printed = {}
    for block in capsys.readouterr().out.strip().split("\n\n"):
        title, _, document = block.partition("\n")
        printed[title.removeprefix("# ")] = json.loads(document)
    bucket = printed["bucket policy of shop-lake"]
    service = "personalize.amazonaws.com"
    for action, resource in [("s3:ListBucket", "arn:aws:s3:::shop-lake"),
                             ("s3:GetObject", "arn:aws:s3:::shop-lake/recsys/personalize/a.csv"),
                             ("s3:PutObject", "arn:aws:s3:::shop-lake/recsys/batch/out.json")]:
        assert evaluate(bucket, action, resource, {}, service)[0] == ALLOWED, action
    trust = printed[f"trust policy of {ROLE}"]
    assert evaluate(trust, "sts:AssumeRole", "*", {}, service)[0] == ALLOWED
    assert evaluate(trust, "sts:AssumeRole", "*", {}, "ec2.amazonaws.com")[0] == IMPLICIT
    platform = printed["policy of the platform's identity (RECSYS_AWS_ROLE_ARN's role, or its user)"]
    assert evaluate(platform, "iam:PassRole", ROLE, PASSED) == (ALLOWED, set())
    assert evaluate(platform, "iam:PassRole", ROLE, {"iam:passedtoservice": "ec2.amazonaws.com"})[0] == IMPLICIT
    assert evaluate(platform, "s3:PutObject", "arn:aws:s3:::shop-lake/recsys/x.csv", {})[0] == ALLOWED
    assert evaluate(platform, "s3:PutObject", "arn:aws:s3:::shop-lake/other/x.csv", {})[0] == IMPLICIT
    assert evaluate(platform, "personalize:CreateSolutionVersion", "arn:aws:personalize:eu-west-1:1:solution/s",
                    {})[0] == ALLOWED


def test_deploy_readme_shows_the_policies_doctor_prints(monkeypatch, capsys):
    from pathlib import Path

    from recsys_platform.cli.main import main

    for name in ("RECSYS_LAKE_BUCKET", "RECSYS_LAKE_PREFIX", "RECSYS_PERSONALIZE_SERVICE_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    assert main(["doctor", "--policies", "--no-dotenv"]) == 0
    printed = capsys.readouterr().out.strip()
    readme = (Path(__file__).resolve().parents[2] / "deploy" / "README.md").read_text()
    shown = readme.split("## Policies", 1)[1].split("```", 2)[1].strip()
    assert shown == printed
