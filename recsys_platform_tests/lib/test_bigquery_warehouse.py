"""BigQueryWarehouse through the real google-cloud-bigquery client, its transport faked."""

import datetime as dt

import pytest
from dagster_gcp import BigQueryResource

import recsys_platform.defs.ga4.events as events_module
from recsys_platform.lib.sql_files import read_sql
from recsys_platform.lib.warehouse.bigquery_engine import BigQueryWarehouse
from recsys_platform_tests.lib.fake_bigquery import FakeBigQuery, fake_client, tables_in

DAY = dt.date(2026, 3, 2)


@pytest.fixture
def fake():
    return FakeBigQuery()


@pytest.fixture
def warehouse(fake):
    wh = BigQueryWarehouse(ga4_property_id="123456789", bigquery=BigQueryResource(project=fake.project),
                           platform_dataset="recsys_prod", product_dataset="shop_replica",
                           export_project="ga-export-project")
    wh._client_override = fake_client(fake)
    return wh


def test_shard_listing_is_one_query_on_the_tables_meta_table(warehouse, fake):
    fake.answer(r"__TABLES__", [("table_id", "STRING"), ("last_modified_time", "INTEGER"), ("row_count", "INTEGER")],
                [("events_20260301", 1772400000000, 10), ("events_20260302", 1772486400000, 12),
                 ("events_intraday_20260303", 1772572800000, 3)])
    shards = warehouse.list_export_shards()
    assert [(s.suffix, s.row_count) for s in shards] == [("20260301", 10), ("20260302", 12)]
    assert len(fake.jobs) == 1
    assert tables_in(fake.queries[0]) == {"ga-export-project.analytics_123456789.__TABLES__"}


def test_merge_replaces_partitions_in_one_transaction_on_a_partitioned_clustered_table(warehouse, fake):
    fake.answer(r"SELECT COUNT\(\*\) AS n", [("n", "INTEGER")], [(42,)])
    params = {"first_day": DAY, "last_day": DAY, "first_suffix": "20260302", "last_suffix": "20260302"}
    rows = warehouse.replace_partitions("ga4_events", read_sql(events_module.__file__, "ga4_events.sql"), params,
                                        "event_date", DAY, DAY, cluster_by=["event_name"])
    assert rows == 42
    create, swap, count = fake.queries
    assert create.startswith("CREATE TABLE IF NOT EXISTS `shop-project.recsys_prod.ga4_events` "
                             "PARTITION BY event_date CLUSTER BY event_name")
    assert tables_in(create) == {"shop-project.recsys_prod.ga4_events", "ga-export-project.analytics_123456789.events_*"}
    assert swap.startswith("BEGIN TRANSACTION;") and swap.rstrip().endswith("COMMIT TRANSACTION;")
    assert "DELETE FROM `shop-project.recsys_prod.ga4_events` WHERE event_date BETWEEN @first_day AND @last_day" in swap
    # Shards are pruned by _TABLE_SUFFIX on the wildcard table, in the export's own project.
    assert tables_in(swap) == {"shop-project.recsys_prod.ga4_events", "ga-export-project.analytics_123456789.events_*"}
    assert "_TABLE_SUFFIX BETWEEN @first_suffix AND @last_suffix" in swap
    assert fake.parameters(1) == {
        "first_day": ("DATE", "2026-03-02"), "last_day": ("DATE", "2026-03-02"),
        "first_suffix": ("STRING", "20260302"), "last_suffix": ("STRING", "20260302"),
    }
    assert fake.jobs[1]["configuration"]["query"]["useLegacySql"] is False


def test_product_db_and_platform_tables_are_qualified(warehouse, fake):
    fake.answer(r"shop_replica", [("n", "INTEGER")], [(3,)])
    table = warehouse.query("SELECT COUNT(*) AS n FROM product_db.items JOIN recsys.interactions USING (item_id) "
                            "WHERE event_date = @day", {"day": DAY})
    assert table.to_pylist() == [{"n": 3}]
    assert tables_in(fake.queries[0]) == {"shop-project.shop_replica.items", "shop-project.recsys_prod.interactions"}


def test_unqualified_or_unknown_dataset_is_refused(warehouse):
    with pytest.raises(ValueError, match="must be qualified"):
        warehouse.query("SELECT * FROM other_dataset.items")


def test_the_ga4_events_asset_sql_parses_for_bigquery():
    import sqlglot

    sql = read_sql(events_module.__file__, "ga4_events.sql")
    assert sqlglot.parse_one(sql, read="bigquery").find(sqlglot.exp.Qualify) is not None
