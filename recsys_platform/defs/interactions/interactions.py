"""interactions: the day's rows of Personalize's interactions dataset, in the warehouse."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recsys_platform.defs.ga4.events import WAREHOUSE_POOL
from recsys_platform.defs.ga4.taxonomy import Taxonomy
from recsys_platform.defs.product_db.contract import ProductDbContract, contract_params, read_shop_sql
from recsys_platform.defs.product_db.replica_assets import product_db_order_items, product_db_orders
from recsys_platform.lib.partitions import partition_range
from recsys_platform.lib.sql_files import read_sql, validate_identifier
from recsys_platform.lib.table_stats import null_counts, preview, rows_per_day
from recsys_platform.lib.warehouse.interface import Warehouse

KEY_COLUMNS = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"]


def interactions_sql(taxonomy: Taxonomy) -> str:
    """interactions.sql with its `tracked_events` CTE generated from the taxonomy: one SELECT per
    refined table, tagged with its Personalize EVENT_TYPE."""
    import sqlglot
    from sqlglot import exp

    branches = []
    for event in taxonomy.events:
        branches.append(
            exp.select(
                "event_date", "user_id", "stream_id", "user_pseudo_id", "item_id", "event_timestamp",
                exp.alias_(exp.Literal.string(event.event_type), "event_type"),
                exp.alias_(exp.cast(exp.column(validate_identifier(event.event_value)), exp.DataType.build("FLOAT64", dialect="bigquery")), "event_value"),
                "transaction_id",
            )
            .from_(exp.table_(validate_identifier(event.asset, "table"), db="recsys"))
            .where("event_date BETWEEN @first_day AND @last_day", dialect="bigquery")
        )
    generated = branches[0]
    for branch in branches[1:]:
        generated = exp.union(generated, branch, distinct=False)
    tree = sqlglot.parse_one(read_sql(__file__, "interactions.sql"), read="bigquery")
    cte = next(c for c in tree.find_all(exp.CTE) if c.alias == "tracked_events")
    cte.set("this", generated)
    return tree.sql("bigquery")


def build_interactions(taxonomy: Taxonomy, partitions: DailyPartitionsDefinition, timezone: str,
                       contract: ProductDbContract) -> AssetsDefinition:
    @asset(
        deps=[*(event.asset for event in taxonomy.events), product_db_orders.key, product_db_order_items.key],
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
        group_name="interactions",
        kinds={"sql"},
        check_specs=[
            AssetCheckSpec("has_rows_every_day", asset="interactions", blocking=True),
            AssetCheckSpec("keys_not_null", asset="interactions", blocking=True,
                           description="USER_ID, ITEM_ID, TIMESTAMP and EVENT_TYPE are never NULL."),
            AssetCheckSpec("event_types_known", asset="interactions", blocking=True,
                           description="Every EVENT_TYPE is one the taxonomy defines."),
        ],
    )
    def interactions(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        """Rows of Personalize's interactions dataset (USER_ID, ITEM_ID, TIMESTAMP in epoch seconds,
        EVENT_TYPE, EVENT_VALUE) per property-local day: every tracked GA4 event from the refined tables,
        mapped through taxonomy.yaml, plus the product DB's paid order lines, the authoritative purchases.
        A GA4 purchase whose transaction is a DB order is not counted twice."""
        sql_started = warehouse.sql_seconds
        days = partition_range(context)
        params = {**days.params, "timezone": timezone, **contract_params(contract),
                  "purchase_event_type": taxonomy.product_db_purchase_event_type}
        rows = warehouse.replace_partitions(
            "interactions", read_shop_sql(interactions_sql(taxonomy), contract, warehouse), params, "event_date",
            days.first_day, days.last_day,
        )
        nulls = null_counts(warehouse, "interactions", KEY_COLUMNS, days)
        by_type = warehouse.query(
            "SELECT EVENT_TYPE AS event_type, source, COUNT(*) AS n FROM recsys.interactions "
            "WHERE event_date BETWEEN @first_day AND @last_day GROUP BY 1, 2 ORDER BY 1, 2",
            days.params,
        ).to_pylist()
        users = warehouse.query(
            "SELECT COUNT(DISTINCT USER_ID) AS n FROM recsys.interactions WHERE event_date BETWEEN @first_day AND @last_day",
            days.params,
        ).to_pylist()[0]["n"]
        unknown_types = sorted({r["event_type"] for r in by_type} - set(taxonomy.event_types))
        per_day = rows_per_day(warehouse, "interactions", days)
        key_nulls = {f"{c}_nulls": nulls[f"{c}_nulls"] for c in KEY_COLUMNS}
        return MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "days": days.label,
                "sql_seconds": MetadataValue.float(warehouse.sql_seconds - sql_started),
                "users": int(users),
                "rows_by_event_type_and_source": MetadataValue.json(
                    {f"{r['event_type']}/{r['source']}": int(r["n"]) for r in by_type}
                ),
                "rows_per_day": MetadataValue.json(per_day),
                "preview": preview(warehouse, "interactions",
                                   ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "source"],
                                   days, order_by="TIMESTAMP"),
            },
            check_results=[
                AssetCheckResult(check_name="has_rows_every_day", passed=all(n > 0 for n in per_day.values()),
                                 metadata={"rows_per_day": MetadataValue.json(per_day)}),
                AssetCheckResult(check_name="keys_not_null", passed=not any(key_nulls.values()), metadata=key_nulls),
                AssetCheckResult(check_name="event_types_known", passed=not unknown_types,
                                 metadata={"unknown_event_types": MetadataValue.json(unknown_types)}),
            ],
        )

    return interactions
