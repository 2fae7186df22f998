"""The AWS side of the local cloud, set up in moto as a cross-account production setup is set up in AWS.

Two accounts:
- the platform's (where the code location's servers run; moto's default account, which moto gives to any
  access key it did not issue): the deployment's base credentials are a user of it;
- the recommender's (`data_account`), which holds the lake bucket, Personalize and two roles:
  - `recsys-platform`, which the platform assumes (`RECSYS_AWS_ROLE_ARN`): trusted by the platform's
    account with an ExternalId, allowed the lake prefix, Personalize, and to pass the service role;
  - `recsys-personalize-service`, which Personalize assumes to read imports and write batch inference
    output (`RECSYS_PERSONALIZE_SERVICE_ROLE_ARN`): trusted by `personalize.amazonaws.com` only.
  The bucket encrypts every object by default (SSE-S3), blocks public access, and lets the Personalize
  service principal read it and write under the prefix (the bucket policy Personalize's guide asks for).

moto does not evaluate IAM or bucket policies (nor trust policies on AssumeRole); they are written as
production would have them, the local Personalize checks the service role's trust policy itself, and the
tests check which identity signed each call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PLATFORM_ROLE = "recsys-platform"
SERVICE_ROLE = "recsys-personalize-service"
# The role an AWS Organizations management account reaches a member account with; moto lets a caller
# assume a role that does not exist, which is how the setup gets into the recommender's account.
SETUP_ROLE = "OrganizationAccountAccessRole"
PERSONALIZE_PRINCIPAL = "personalize.amazonaws.com"


@dataclass(frozen=True)
class AwsAccounts:
    platform_account: str
    data_account: str
    region: str
    bucket: str
    prefix: str
    platform_role_arn: str
    service_role_arn: str
    external_id: str


def _trust_account(account: str, external_id: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
    }]}


def _trust_service(service: str, account: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole",
        # the confused-deputy guard AWS recommends: only on behalf of this account
        "Condition": {"StringEquals": {"aws:SourceAccount": account}},
    }]}


def _lake_statements(bucket: str, prefix: str, write: bool) -> list[dict]:
    actions = ["s3:GetObject", "s3:PutObject"] if write else ["s3:GetObject"]
    return [
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
        {"Effect": "Allow", "Action": actions, "Resource": f"arn:aws:s3:::{bucket}/{prefix}*"},
    ]


def provision(endpoint_url: str, region: str, data_account: str, bucket: str, prefix: str, external_id: str,
              base_credentials: dict) -> AwsAccounts:
    """Create the roles and the bucket in moto (at `endpoint_url`) and return what the deployment needs."""
    import boto3

    def client(service: str, credentials: dict):
        return boto3.client(service, endpoint_url=endpoint_url, region_name=region, **credentials)

    platform_account = client("sts", base_credentials).get_caller_identity()["Account"]
    raw = client("sts", base_credentials).assume_role(
        RoleArn=f"arn:aws:iam::{data_account}:role/{SETUP_ROLE}", RoleSessionName="local-cloud-setup",
    )["Credentials"]
    admin = {"aws_access_key_id": raw["AccessKeyId"], "aws_secret_access_key": raw["SecretAccessKey"],
             "aws_session_token": raw["SessionToken"]}
    iam, s3 = client("iam", admin), client("s3", admin)

    service_role = iam.create_role(
        RoleName=SERVICE_ROLE, AssumeRolePolicyDocument=json.dumps(_trust_service(PERSONALIZE_PRINCIPAL, data_account)),
        Description="Amazon Personalize reads the lake's snapshots and writes batch inference output",
    )["Role"]["Arn"]
    iam.put_role_policy(RoleName=SERVICE_ROLE, PolicyName="lake", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": _lake_statements(bucket, prefix, write=True)}))

    platform_role = iam.create_role(
        RoleName=PLATFORM_ROLE, AssumeRolePolicyDocument=json.dumps(_trust_account(platform_account, external_id)),
        Description="The recsys platform's code location (in another account) writes the lake and runs Personalize",
    )["Role"]["Arn"]
    iam.put_role_policy(RoleName=PLATFORM_ROLE, PolicyName="recsys", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            *_lake_statements(bucket, prefix, write=True),
            {"Effect": "Allow", "Action": ["personalize:*"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["iam:PassRole"], "Resource": service_role,
             "Condition": {"StringEquals": {"iam:PassedToService": PERSONALIZE_PRINCIPAL}}},
        ]}))

    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **location)
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": False}]})
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "PersonalizeReadsTheLake", "Effect": "Allow", "Principal": {"Service": PERSONALIZE_PRINCIPAL},
         "Action": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
         "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{prefix}*"]},
    ]}))
    return AwsAccounts(platform_account=platform_account, data_account=data_account, region=region, bucket=bucket,
                       prefix=prefix, platform_role_arn=platform_role, service_role_arn=service_role,
                       external_id=external_id)
