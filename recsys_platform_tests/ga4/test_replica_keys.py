"""Product DB keys of every type the contract accepts become the strings GA4 writes (user_id "7", item_id
"12345678901"), on both warehouses: a replica whose keys are NUMERIC (a MySQL DECIMAL or BIGINT UNSIGNED
column through Datastream) must join GA4's ids as an INT64 key does."""

import duckdb
import pytest

from recsys_platform.defs.product_db.contract import contract_params, load_contract, read_shop_sql
from recsys_platform_tests.ga4.conftest import ENGINES, warehouse_on

KEYS = ["7", "12345678901", "0"]


@pytest.mark.parametrize("key_type", ["BIGINT", "DECIMAL(38,9)", "DECIMAL(20,0)", "VARCHAR"])
@pytest.mark.parametrize("engine", ENGINES)
def test_replica_keys_become_the_decimal_strings_ga4_writes(engine, key_type, recsys_home, tmp_path, monkeypatch):
    with duckdb.connect(str(recsys_home / "product_db.duckdb")) as con:
        con.execute("CREATE SCHEMA product_db")
        # The Datastream contract's users and orders: keys of the type under test, a NUMERIC status code.
        con.execute(f"CREATE TABLE product_db.product_db.shop_users (id {key_type}, created_at TIMESTAMP)")
        con.execute(f"CREATE TABLE product_db.product_db.shop_orders (id {key_type}, user_id {key_type}, "
                    "ordered_at TIMESTAMP, status DECIMAL(38,9))")
        for key in KEYS:
            con.execute(f"INSERT INTO product_db.product_db.shop_users VALUES (CAST(? AS {key_type}), TIMESTAMP '2026-03-01')",
                        [key])
        con.execute(f"INSERT INTO product_db.product_db.shop_orders VALUES (CAST('41' AS {key_type}), "
                    f"CAST('7' AS {key_type}), TIMESTAMP '2026-03-01', 1.5)")
    with warehouse_on(engine, recsys_home, tmp_path, monkeypatch) as warehouse:
        contract = load_contract("datastream")
        params = contract_params(contract)
        users = warehouse.query(read_shop_sql("SELECT user_id FROM shop.users", contract, warehouse), params)
        assert sorted(users.column("user_id").to_pylist()) == sorted(KEYS)
        orders = warehouse.query(read_shop_sql("SELECT order_id, user_id, status FROM shop.orders", contract,
                                               warehouse), params).to_pylist()
        assert orders == [{"order_id": "41", "user_id": "7", "status": "1.5"}]
