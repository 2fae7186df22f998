"""The shop's product database as it arrives in the warehouse (a Datastream replica in production)."""

from dagster import AssetSpec

_DESCRIPTIONS = {
    "items": "Catalogue: item_id, item_name, price, category_l1, category_l2, is_available, created_at.",
    "users": "Registered users: user_id, created_at. GA4's user_id is this id once a visitor logs in.",
    "orders": "Orders: order_id (= GA4 transaction_id), user_id, ordered_at (UTC), status.",
    "order_items": "Order lines: order_id, item_id, quantity, unit_price. The authoritative purchases.",
    "erasure_requests": "Right-to-erasure requests: user_id and/or user_pseudo_id, requested_at. Optional: a replica "
                        "without the table has received none.",
}

product_db_items, product_db_users, product_db_orders, product_db_order_items, product_db_erasure_requests = (
    AssetSpec(key=["product_db", name], description=f"{text} Names and types: the product DB contract.",
              group_name="product_db", kinds={"sql"})
    for name, text in _DESCRIPTIONS.items()
)
product_db_specs = [product_db_items, product_db_users, product_db_orders, product_db_order_items,
                    product_db_erasure_requests]
