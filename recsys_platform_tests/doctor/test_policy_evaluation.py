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
