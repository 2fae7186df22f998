"""The aws deployment, whole, on the local cloud (conftest.py `deployment`): what landed where.

Everything is read back through the clouds' own APIs (google-cloud-bigquery, boto3) and moto's record of
who signed each request, never through the pipeline's code. One test item runs every check as a subtest:
under `pytest -n 2` the items of a module may go to both workers, and each would run the deployment.
"""

from __future__ import annotations

import datetime as dt
import re


from recsys_platform_tests.aws_deployment.conftest import (
    FIRST_DAY,
    ITEM_PARAM,
    LATER_DAY,
    PROPERTY,
    RANGE_LAST_DAY,
    TIMEZONE,
    failures,
    items_fields,
)

PLATFORM = "shop-platform.recsys"
REPLICA = "shop-platform.shop_replica"
EXPORT = f"shop-analytics.analytics_{PROPERTY}"
DAILY_TABLES = ["ga4_events", "ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases", "interactions"]


def _rows(client, sql: str, **parameters) -> list[dict]:
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(query_parameters=[
        bigquery.ScalarQueryParameter(name, "DATE", value) for name, value in parameters.items()])
    return [dict(row) for row in client.query(sql, job_config=config, location="EU").result()]


def _role_of(cloud, access_key_id: str | None) -> str | None:
    role = cloud.moto.assumed_role(access_key_id) if access_key_id else None
    return role.role_arn if role is not None else None


def check_every_run_of_the_deployment_succeeds(deployment):
    for name in ("range_run", "first_training", "day_run", "second_training"):
        result = getattr(deployment, name)
        assert result.success, f"{name}:\n{failures(result)}"


def check_the_export_sensor_sees_the_new_day_through_bigquery(deployment):
    """It lists the export (`__TABLES__`) through the BigQuery API: nothing new after the backfill (its
    cursor seeded from the merged days), then one run for the day that arrived, keyed by table and time."""
    after_range, after_delivery = deployment.tick_after_range, deployment.tick_after_delivery
    assert not after_range.run_requests and "no GA4 export table appeared or changed" in after_range.skip_message
    [request] = after_delivery.run_requests
    assert request.partition_key == LATER_DAY.isoformat()
    assert request.run_key.startswith(f"events_{LATER_DAY:%Y%m%d}@")


def check_the_settings_are_production_s_with_a_datastream_replica(deployment):
    from recsys_platform.settings import PlatformSettings

    settings = PlatformSettings.from_environment(read_dotenv=False)
    assert (settings.deployment, settings.timezone, settings.product_db_contract) == ("aws", TIMEZONE, "datastream")
    warehouse = deployment.defs.resources["warehouse"]
    assert type(warehouse).__name__ == "BigQueryWarehouse" and type(deployment.defs.resources["lake"]).__name__ == "S3Lake"


def check_tables_are_day_partitioned_and_clustered_in_the_platform_dataset(deployment):
    with deployment.cloud.bigquery_client() as client:
        assert client.get_dataset(PLATFORM).location == "EU"
        tables = {t.table_id for t in client.list_tables(PLATFORM)}
        assert tables == set(DAILY_TABLES)  # and no staging table left behind
        for name in DAILY_TABLES:
            table = client.get_table(f"{PLATFORM}.{name}")
            assert table.time_partitioning.field == "event_date", name
            assert table.num_rows > 0, name
        assert client.get_table(f"{PLATFORM}.ga4_events").clustering_fields == ["event_name"]
        # The run read the export and the replica and wrote nothing there.
        assert {t.table_id for t in client.list_tables(REPLICA)} == {
            "shop_items", "shop_users", "shop_orders", "shop_order_items", "shop_erasure_requests"}
        assert all(t.table_id.startswith("events_") for t in client.list_tables(EXPORT))
        per_day = _rows(client, f"SELECT event_date, COUNT(*) AS n FROM `{PLATFORM}.interactions` GROUP BY 1 ORDER BY 1")
    assert [r["event_date"] for r in per_day] == [FIRST_DAY + dt.timedelta(days=n)
                                                   for n in range((LATER_DAY - FIRST_DAY).days + 1)]


def check_the_replica_s_int64_ids_and_datetimes_become_string_ids_and_instants(deployment):
    """The Datastream layout: INT64 keys and DATETIME (UTC wall clock) columns. Every paid order line of
    the days is one `product_db` purchase in interactions, with the id's decimal string and the instant."""
    with deployment.cloud.bigquery_client() as client:
        orders = {f.name: f.field_type for f in client.get_table(f"{REPLICA}.shop_orders").schema}
        assert (orders["id"], orders["user_id"], orders["ordered_at"]) == ("INTEGER", "INTEGER", "DATETIME")
        lines = {f.name: f.field_type for f in client.get_table(f"{REPLICA}.shop_order_items").schema}
        assert (lines["order_id"], lines["item_id"]) == ("INTEGER", "INTEGER")
        [check] = _rows(client, f"""
            WITH paid AS (
              SELECT CAST(o.user_id AS STRING) AS user_id, CAST(oi.item_id AS STRING) AS item_id,
                     UNIX_SECONDS(TIMESTAMP(o.ordered_at, 'UTC')) AS seconds,
                     DATE(TIMESTAMP(o.ordered_at, 'UTC'), '{TIMEZONE}') AS day
              FROM `{REPLICA}.shop_orders` AS o
              JOIN `{REPLICA}.shop_order_items` AS oi ON oi.order_id = o.id
              WHERE o.status = 'paid'
                AND o.user_id NOT IN (SELECT r.user_id FROM `{REPLICA}.shop_erasure_requests` AS r
                                      WHERE r.user_id IS NOT NULL)
            ),
            db AS (SELECT * FROM `{PLATFORM}.interactions` WHERE source = 'product_db')
            SELECT
              (SELECT COUNT(*) FROM paid WHERE day BETWEEN @first_day AND @last_day) AS paid_lines,
              (SELECT COUNT(*) FROM db) AS db_purchases,
              (SELECT COUNTIF(NOT REGEXP_CONTAINS(USER_ID, r'^[0-9]+$') OR NOT REGEXP_CONTAINS(ITEM_ID, r'^[0-9]+$'))
               FROM db) AS not_decimal,
              (SELECT COUNT(*) FROM db WHERE NOT EXISTS (
                 SELECT 1 FROM paid AS p WHERE p.user_id = db.USER_ID AND p.item_id = db.ITEM_ID
                   AND p.seconds = db.`TIMESTAMP` AND p.day = db.event_date)) AS unmatched
            """, first_day=FIRST_DAY, last_day=LATER_DAY)
    assert check["db_purchases"] > 0
    assert check == {"paid_lines": check["db_purchases"], "db_purchases": check["db_purchases"], "not_decimal": 0,
                     "unmatched": 0}


def check_a_later_day_whose_items_gain_item_params_merges_and_older_days_stay_readable(deployment):
    key, value = ITEM_PARAM
    assert "item_params" not in deployment.items_fields_before  # days 1-3 were exported without it
    with deployment.cloud.bigquery_client() as client:
        assert "item_params" not in items_fields(client, f"{EXPORT}.events_{FIRST_DAY:%Y%m%d}")
        assert "item_params" in items_fields(client, f"{EXPORT}.events_{LATER_DAY:%Y%m%d}")
        after = items_fields(client, f"{PLATFORM}.ga4_events")
        # The field joined the table's items record (ALLOW_FIELD_ADDITION), after the fields it had.
        assert after == [*deployment.items_fields_before, "item_params"]
        per_day = _rows(client, f"""
            SELECT event_date, COUNT(*) AS n,
                   COUNTIF(EXISTS(SELECT 1 FROM UNNEST(items) AS i, UNNEST(i.item_params) AS p
                                  WHERE p.key = '{key}' AND p.value.string_value = '{value}')) AS with_param
            FROM `{PLATFORM}.ga4_events` GROUP BY event_date ORDER BY event_date""")
        refined = _rows(client, f"SELECT COUNT(*) AS n FROM `{PLATFORM}.ga4_item_views` WHERE event_date = @day",
                        day=LATER_DAY)
    by_day = {r["event_date"].isoformat(): r for r in per_day}
    assert by_day[LATER_DAY.isoformat()]["with_param"] > 0
    for day, rows in deployment.rows_before.items():  # untouched by the later day's merge, still readable
        assert (by_day[day]["n"], by_day[day]["with_param"]) == (rows, 0), day
    assert refined[0]["n"] > 0


def _lake_objects(cloud) -> list[dict]:
    s3 = cloud.aws_client("s3")
    accounts = cloud.accounts
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=accounts.bucket, Prefix=accounts.prefix)
    return [item for page in pages for item in page.get("Contents", [])]


def check_snapshots_are_csv_objects_in_the_bucket_encrypted_on_write(deployment):
    cloud = deployment.cloud
    accounts = cloud.accounts
    s3 = cloud.aws_client("s3")
    keys = [o["Key"] for o in _lake_objects(cloud)]
    csvs = [k for k in keys if k.endswith(".csv")]
    for dataset in ("interactions", "items", "users"):
        for day in (RANGE_LAST_DAY, LATER_DAY):
            assert any(k.startswith(f"{accounts.prefix}personalize/{dataset}/{day}/") for k in csvs), (dataset, day)
    for key in csvs:
        head = s3.head_object(Bucket=accounts.bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256" and head["Metadata"]["sha256"], key
    interactions = next(k for k in csvs if k.startswith(f"{accounts.prefix}personalize/interactions/"))
    header = s3.get_object(Bucket=accounts.bucket, Key=interactions)["Body"].read().split(b"\n", 1)[0]
    assert header.decode().split(",")[:4] == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"]
    # The platform asked for SSE on every write (RECSYS_LAKE_SSE), not only the bucket's default; and it
    # wrote nothing outside its prefix.
    puts = [r for r in cloud.moto.requests
            if r.service == "s3" and r.method == "PUT" and _role_of(cloud, r.access_key_id) == accounts.platform_role_arn]
    assert puts and all(r.path.startswith(f"/{accounts.bucket}/{accounts.prefix}") for r in puts)
    assert all(r.server_side_encryption == "AES256" for r in puts if r.path.endswith(".csv"))


def check_personalize_imports_read_s3_uris_of_the_lake_with_the_service_role(deployment):
    cloud = deployment.cloud
    accounts = cloud.accounts
    personalize = cloud.aws_client("personalize")
    jobs = []
    for group in personalize.list_dataset_groups()["datasetGroups"]:
        for dataset in personalize.list_datasets(datasetGroupArn=group["datasetGroupArn"])["datasets"]:
            for job in personalize.list_dataset_import_jobs(datasetArn=dataset["datasetArn"])["datasetImportJobs"]:
                jobs.append(personalize.describe_dataset_import_job(
                    datasetImportJobArn=job["datasetImportJobArn"])["datasetImportJob"])
    assert len(jobs) >= 4  # interactions, items, users for day 3; at least interactions for day 4
    # The service role read what the jobs name (moto saw its GETs), and only there.
    service_reads = {r.path for r in cloud.moto.requests if r.service == "s3" and r.method == "GET"
                     and _role_of(cloud, r.access_key_id) == accounts.service_role_arn}
    assert service_reads and all(path.startswith(f"/{accounts.bucket}/{accounts.prefix}") for path in service_reads)
    for job in jobs:
        location = job["dataSource"]["dataLocation"]
        assert job["status"] == "ACTIVE", job.get("failureReason")
        assert location.startswith(f"s3://{accounts.bucket}/{accounts.prefix}personalize/"), location
        assert job["roleArn"] == accounts.service_role_arn
        assert "/" + location[len("s3://"):] in service_reads, location


def check_every_aws_call_of_the_pipeline_is_signed_with_the_assumed_role(deployment):
    from recsys_platform.standins.local_cloud.cloud import BASE_ACCESS_KEY_ID

    cloud = deployment.cloud
    accounts = cloud.accounts
    calls = deployment.pipeline_calls
    assert {c.service for c in calls} >= {"sts", "s3", "personalize"}
    endpoints = (cloud.moto.endpoint_url, cloud.personalize.endpoint_url)
    assert all(c.url.startswith(endpoints) for c in calls)  # loopback stand-ins only
    sts = [c for c in calls if c.service == "sts"]
    assert {(c.operation, c.access_key_id) for c in sts} == {("AssumeRole", BASE_ACCESS_KEY_ID)}
    others = [c for c in calls if c.service != "sts"]
    keys = {c.access_key_id for c in others}
    assert all(key and key.startswith("ASIA") for key in keys)  # temporary credentials
    for key in keys:
        role = cloud.moto.assumed_role(key)
        assert role is not None, f"{key} was not issued by STS"
        assert (role.role_arn, role.external_id, role.session_name) == (
            accounts.platform_role_arn, accounts.external_id, "recsys-platform")
        assert role.account_id == accounts.data_account != accounts.platform_account  # cross-account
    # moto saw the same: the platform's S3 requests carried the role's session token.
    platform_s3 = [r for r in cloud.moto.requests if r.service == "s3" and r.access_key_id in keys]
    assert platform_s3 and all(r.session_token for r in platform_s3)


def check_the_campaign_serves_the_new_version_through_personalize_runtime(deployment):
    cloud = deployment.cloud
    campaign = deployment.second_training.asset_value("personalize_campaign")
    version = deployment.second_training.asset_value("personalize_solution_version")
    described = cloud.aws_client("personalize").describe_campaign(campaignArn=campaign.campaign_arn)["campaign"]
    assert described["status"] == "ACTIVE"
    assert campaign.promoted and described["solutionVersionArn"] == version.solution_version_arn == campaign.serving_solution_version_arn
    with cloud.bigquery_client() as client:
        catalogue = {str(r["id"]) for r in _rows(client, f"SELECT id FROM `{REPLICA}.shop_items`")}
        [user] = _rows(client, f"SELECT USER_ID FROM `{PLATFORM}.interactions` WHERE source = 'product_db' "
                               "GROUP BY USER_ID ORDER BY COUNT(*) DESC, USER_ID LIMIT 1")
    # Through the platform's own resource: assumed role, AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME.
    with deployment.defs.resources["personalize"].process_config_and_initialize_cm() as personalize:
        answer = personalize.get_runtime_client().get_recommendations(
            campaignArn=campaign.campaign_arn, userId=user["USER_ID"], numResults=10)
    items = [item["itemId"] for item in answer["itemList"]]
    assert len(items) == 10 and set(items) <= catalogue, items


def check_snapshot_hand_offs_name_s3_uris_of_the_bucket(deployment):
    accounts = deployment.cloud.accounts
    for asset in ("personalize_interactions_csv", "personalize_items_csv", "personalize_users_csv"):
        snapshot = deployment.second_training.asset_value(asset)
        assert re.match(rf"^s3://{accounts.bucket}/{accounts.prefix}personalize/", snapshot.uri), snapshot.uri


CHECKS = [check_every_run_of_the_deployment_succeeds, check_the_export_sensor_sees_the_new_day_through_bigquery,
          check_the_settings_are_production_s_with_a_datastream_replica,
          check_tables_are_day_partitioned_and_clustered_in_the_platform_dataset,
          check_the_replica_s_int64_ids_and_datetimes_become_string_ids_and_instants,
          check_a_later_day_whose_items_gain_item_params_merges_and_older_days_stay_readable,
          check_snapshots_are_csv_objects_in_the_bucket_encrypted_on_write,
          check_personalize_imports_read_s3_uris_of_the_lake_with_the_service_role,
          check_every_aws_call_of_the_pipeline_is_signed_with_the_assumed_role,
          check_the_campaign_serves_the_new_version_through_personalize_runtime,
          check_snapshot_hand_offs_name_s3_uris_of_the_bucket]


def test_the_aws_deployment_runs_whole_on_the_local_cloud(deployment, subtests):
    for check in CHECKS:
        with subtests.test(msg=check.__name__[len("check_"):]):
            check(deployment)
