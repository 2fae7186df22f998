"""The embedded warehouse lends one in-memory DuckDB database per call and keeps it for the next call: its
files are attached for the call only, so their locks are held exactly as long as before."""

import multiprocessing
import subprocess
import sys

import duckdb
import pytest

from recsys_platform.lib.warehouse import duckdb_engine
from recsys_platform.lib.warehouse.duckdb_engine import DuckDBWarehouse
from recsys_platform.shared.duckdb_files import FileLender


@pytest.fixture
def warehouse(tmp_path):
    export = tmp_path / "ga4_export.duckdb"
    with duckdb.connect(str(export)) as con:
        con.execute("CREATE SCHEMA analytics_1; CREATE TABLE analytics_1.events_20260302 AS SELECT 1 AS n")
    return DuckDBWarehouse(warehouse_path=str(tmp_path / "warehouse.duckdb"), export_path=str(export),
                           product_db_path=str(tmp_path / "product_db.duckdb"), ga4_property_id="1")


@pytest.fixture
def created(monkeypatch):
    """Counts the DuckDB databases created in this process."""
    made = []
    real = duckdb.connect

    def connect(*args, **kwargs):
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", connect)
    monkeypatch.setattr(duckdb_engine, "_DATABASES", FileLender())
    return made


def _write_from_another_process(path: str) -> None:
    subprocess.run([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                    "c.execute('CREATE TABLE IF NOT EXISTS elsewhere AS SELECT 1 AS n'); c.close()", path],
                   check=True, capture_output=True, timeout=60)


def test_calls_reuse_one_database_and_release_the_files_between_calls(warehouse, created):
    warehouse.query("CREATE TABLE recsys.t AS SELECT 1 AS n")
    assert warehouse.query("SELECT n FROM recsys.t").column("n").to_pylist() == [1]
    assert warehouse.query("SELECT current_setting('TimeZone') AS zone").column("zone").to_pylist() == ["UTC"]
    assert warehouse.has_table("t")
    assert len(created) == 1
    # Between calls no file is held: another process writes the warehouse file, and the next call sees it.
    _write_from_another_process(warehouse.warehouse_path)
    assert warehouse.query("SELECT count(*) AS n FROM recsys.t").column("n").to_pylist() == [1]


def test_a_call_made_while_another_reads_fails_without_disturbing_the_reader(warehouse, created):
    """DuckDB attaches a file once per process: a second call while one still reads (a generator not yet
    exhausted) is refused by DuckDB, naming the file, and must leave the reader's database alone."""
    warehouse.query("CREATE TABLE recsys.t AS SELECT * FROM range(5) AS r(n)")
    batches = warehouse.iter_batches("SELECT n FROM recsys.t", batch_rows=2)
    first = next(batches)
    with pytest.raises(duckdb.Error, match="already attached"):
        warehouse.query("SELECT count(*) AS n FROM recsys.t")
    rest = [n for batch in batches for n in batch.column("n").to_pylist()]
    assert sorted(first.column("n").to_pylist() + rest) == [0, 1, 2, 3, 4]
    assert len(created) == 2  # the refused call borrowed a second database, now idle too
    assert warehouse.query("SELECT count(*) AS n FROM recsys.t").column("n").to_pylist() == [5]
    assert warehouse.query("SELECT count(*) AS n FROM recsys.t").column("n").to_pylist() == [5]
    assert len(created) == 2
    _write_from_another_process(warehouse.warehouse_path)


def test_a_failed_call_leaves_no_transaction_or_file_behind(warehouse, created):
    def refuse(staged):
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        warehouse.replace_partitions("t", "SELECT DATE '2026-03-02' AS d, 1 AS n", {}, "d", "2026-03-02",
                                     "2026-03-02", validate=refuse)
    with pytest.raises(duckdb.Error):
        warehouse.query("SELECT * FROM recsys.no_such_table")
    assert not warehouse.has_table("t")
    _write_from_another_process(warehouse.warehouse_path)
    assert warehouse.replace_partitions("t", "SELECT DATE '2026-03-02' AS d, 1 AS n", {}, "d", "2026-03-02",
                                        "2026-03-02") == 1
    assert len(created) == 1


def _query_in_child(warehouse, queue) -> None:
    try:
        queue.put(warehouse.query("SELECT count(*) AS n FROM recsys.t").column("n").to_pylist())
    except BaseException as error:  # reported to the parent, which fails the test with it
        queue.put(repr(error))


def test_a_forked_process_opens_its_own_databases(warehouse, created):
    warehouse.query("CREATE TABLE recsys.t AS SELECT 1 AS n")  # the parent now holds an idle database
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_query_in_child, args=(warehouse, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0 and queue.get(timeout=5) == [1]
    assert warehouse.query("SELECT n FROM recsys.t").column("n").to_pylist() == [1]


def test_a_process_forked_while_another_thread_borrows_a_database_opens_its_own(warehouse, created):
    """A fork can land while another thread of the parent holds the lender's lock (a step's helper thread
    borrowing a database): the child must not wait for a thread it does not have."""
    warehouse.query("CREATE TABLE recsys.t AS SELECT 1 AS n")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    with duckdb_engine._DATABASES._lock:  # held, as that other thread would, at the moment of the fork
        child = context.Process(target=_query_in_child, args=(warehouse, queue))
        child.start()
    child.join(30)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0 and queue.get(timeout=5) == [1]
