"""The aws deployment's clouds on this machine: the BigQuery stand-in, moto's server (S3, STS, IAM) and
the local Personalize in S3 mode, all on loopback, set up as a cross-account production setup is.

    cloud = start_local_cloud(LocalCloudConfig(state_dir=..., export_db=..., product_db=...,
                                               property_id="123456789", timezone="Europe/Berlin"))
    with cloud.activated():      # os.environ = what a production deployment sets, endpoints excepted
        defs = build_definitions(PlatformSettings.from_environment())
    cloud.stop()

Rooms: `cloud` (start, environment, stop), `aws_accounts` (accounts, roles, bucket in moto),
`moto_standin` (moto's server, recording who signed each request), `loopback`. Like every stand-in, it
reaches nothing of the pipeline; `recsys-platform demo-aws` and the tests start it.
"""

from recsys_platform.standins.local_cloud.cloud import (
    UNSET_VARIABLES,
    LocalCloud,
    LocalCloudConfig,
    start_local_cloud,
)

__all__ = ["UNSET_VARIABLES", "LocalCloud", "LocalCloudConfig", "start_local_cloud"]
