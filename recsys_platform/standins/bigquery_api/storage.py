"""Where BigQuery's projects, datasets and tables live on DuckDB.

A dataset is a DuckDB schema. By default a project is one DuckDB file, `<data_dir>/projects/<project>.duckdb`,
created with its first dataset. Existing files can be served as they are, without copying:
`projects={"shop-analytics": "ga4_export.duckdb"}` serves every schema of that file as a dataset of the
project, and `datasets={("shop-platform", "product_db"): ("product_db.duckdb", "product_db")}` serves one
schema of a file as one dataset of a project (a project can then mix served datasets with its own).

DuckDB lets one process open a file while it writes, and another process (the GA4 simulator rewriting a
shard) may hold a served file. So a request attaches the files it needs (read-only unless it writes
them) to a kept in-memory database, retrying with jittered backoff while another process holds a lock,
and detaches them when it is done (`shared/duckdb_files.py`, as the embedded warehouse does). Within this
process, one lock serialises DuckDB work: two DuckDB instances of one process must never write the same
file.

A table's `__TABLES__` row (BigQuery's legacy meta-table: creation and modification times in ms, row
count, size, type) comes from the producer's physical `__TABLES__` table when the file has one (the
simulator maintains it as GA4's export would be listed), else from the stand-in's catalog, else from the
file's modification time. Row counts are counted, never trusted from a stale record.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


from recsys_platform.shared.duckdb_files import Attachment, FileLender
from recsys_platform.standins.bigquery_api.catalog import Catalog
from recsys_platform.standins.bigquery_api.errors import BigQueryError, invalid
from recsys_platform.standins.bigquery_api.schema import Field, field_from_duckdb, quote

log = logging.getLogger(__name__)

META_TABLE = "__TABLES__"
_PROJECT_ID = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,62}$")
_DATASET_ID = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_TABLE_ID = re.compile(r"^[\w\- ]{1,1024}$")
_HIDDEN_SCHEMAS = {"information_schema", "pg_catalog"}
TABLE_TYPE_CODES = {"TABLE": 1, "VIEW": 2}
# BigQuery's logical size of a value of each type (https://cloud.google.com/bigquery/pricing#data),
# strings and bytes counted at an assumed average length: the stand-in estimates numBytes from them.
_LOGICAL_BYTES = {"INTEGER": 8, "FLOAT": 8, "NUMERIC": 16, "BOOLEAN": 1, "TIMESTAMP": 8, "DATETIME": 8, "DATE": 8,
                  "TIME": 8, "INTERVAL": 16, "STRING": 2 + 16, "BYTES": 2 + 16, "JSON": 2 + 32}


def validate_project(project: str) -> str:
    if not isinstance(project, str) or not _PROJECT_ID.match(project):
        raise invalid(f"Invalid project ID '{project}'. Project IDs must contain 1-63 lowercase letters, digits "
                      "or dashes")
    return project


def validate_dataset(dataset: str) -> str:
    if not isinstance(dataset, str) or not _DATASET_ID.match(dataset):
        raise invalid(f"Invalid dataset ID \"{dataset}\". Dataset IDs must be alphanumeric (plus underscores) "
                      "and must be at most 1024 characters long.")
    return dataset


def validate_table(table: str) -> str:
    if not isinstance(table, str) or not _TABLE_ID.match(table) or table == META_TABLE:
        raise invalid(f"Invalid table ID \"{table}\". Table IDs must be alphanumeric (plus underscores, dashes "
                      "and spaces) and must be at most 1024 characters long.")
    return table


@dataclass(frozen=True)
class Source:
    """The DuckDB file and schema holding one dataset."""

    path: Path
    schema: str


class Storage:
    def __init__(self, data_dir: str | Path, projects: Mapping[str, str | Path] | None = None,
                 datasets: Mapping[tuple[str, str], tuple[str | Path, str]] | None = None,
                 default_location: str = "US", lock_timeout_seconds: float = 120.0, threads: int = 2,
                 memory_limit: str = "1GB"):
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.data_dir / "catalog.sqlite")
        self.projects = {validate_project(p): Path(f).resolve() for p, f in (projects or {}).items()}
        self.datasets = {(validate_project(p), validate_dataset(d)): Source(Path(f).resolve(), schema)
                         for (p, d), (f, schema) in (datasets or {}).items()}
        self.default_location = default_location
        self.lock_timeout_seconds = lock_timeout_seconds
        self.threads = threads
        self.memory_limit = memory_limit
        self._duckdb_config = {"autoinstall_known_extensions": False,  # never download an extension at run time
                               "threads": threads, "memory_limit": memory_limit}
        self.lock = threading.RLock()
        # One lender per stand-in: sessions run one at a time (under `lock`), so it keeps one database.
        self._databases = FileLender()

    # where things are ----------------------------------------------------------------------------
    def project_file(self, project: str) -> Path:
        if project in self.projects:
            return self.projects[project]
        return self.data_dir / "projects" / f"{validate_project(project)}.duckdb"

    def source(self, project: str, dataset: str) -> Source:
        return self.datasets.get((project, dataset)) or Source(self.project_file(project), dataset)

    def files(self, project: str) -> set[Path]:
        return {self.project_file(project)} | {s.path for (p, _), s in self.datasets.items() if p == project}

    def owner(self, path: Path) -> str:
        """The project a DuckDB file belongs to, for messages."""
        for project, file in self.projects.items():
            if file == path:
                return project
        for (project, _), source in self.datasets.items():
            if source.path == path:
                return project
        return path.stem

    def served_projects(self) -> list[str]:
        found = set(self.projects) | {p for p, _ in self.datasets}
        folder = self.data_dir / "projects"
        if folder.is_dir():
            found |= {path.stem for path in folder.glob("*.duckdb")}
        return sorted(found)

    # connections ---------------------------------------------------------------------------------
    @contextmanager
    def session(self, read: Iterable[Path] = (), write: Iterable[Path] = ()):
        """A DuckDB connection with the given files attached (read-only unless in `write`)."""
        write = {Path(p) for p in write}
        read = {Path(p) for p in read} - write
        with self.lock:
            files = []
            for path in sorted(read | write):
                if path in write:
                    path.parent.mkdir(parents=True, exist_ok=True)
                elif not path.exists():
                    continue  # nothing stored yet: every dataset of it is "not found"
                files.append(Attachment(str(path), _alias(path), read_only=path not in write))
            with self._databases.attached(self._duckdb_config, files, self.lock_timeout_seconds,
                                          self._held) as con:
                yield Session(self, con, {Path(f.path): f.alias for f in files}, write)

    def _held(self, error: Exception) -> BigQueryError:
        return BigQueryError("backendError", f"A DuckDB file is held by another process for over "
                             f"{self.lock_timeout_seconds:g} s: {error}")

    def close(self) -> None:
        with self.lock:
            self._databases.close()
            self.catalog.close()


def _alias(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9_]", "_", path.stem)[:40]
    return f"bq_{stem}_{digest}"


class Session:
    """BigQuery's catalog questions answered on one DuckDB connection."""

    def __init__(self, storage: Storage, con, aliases: dict[Path, str], writable: set[Path]):
        self.storage = storage
        self.con = con
        self.aliases = aliases
        self.writable = writable
        self._tables: dict[tuple[str, str], dict[str, str]] = {}

    # names ---------------------------------------------------------------------------------------
    def place(self, project: str, dataset: str) -> tuple[str, str] | None:
        """(DuckDB catalog alias, schema) of a dataset, or None if its file is not attached."""
        source = self.storage.source(project, dataset)
        alias = self.aliases.get(source.path)
        return None if alias is None else (alias, source.schema)

    def ref(self, project: str, dataset: str, table: str) -> str:
        alias, schema = self._require_place(project, dataset)
        return f"{quote(alias)}.{quote(schema)}.{quote(table)}"

    def ref_parts(self, project: str, dataset: str, table: str) -> tuple[str, str, str]:
        alias, schema = self._require_place(project, dataset)
        return alias, schema, table

    def _require_place(self, project, dataset):
        place = self.place(project, dataset)
        if place is None:
            raise BigQueryError("internalError", f"dataset {project}:{dataset} is not attached to this session")
        return place

    def clean_message(self, message: str) -> str:
        """A DuckDB error message with the session's catalog aliases spelled as the projects they serve."""
        for path, alias in self.aliases.items():
            owner = self.storage.owner(path)
            message = message.replace(f'"{alias}"', owner).replace(alias, owner)
        return message

    # datasets ------------------------------------------------------------------------------------
    def dataset_exists(self, project: str, dataset: str) -> bool:
        place = self.place(project, dataset)
        if place is None:
            return False
        (found,) = self.con.execute(
            "SELECT count(*) FROM duckdb_schemas() WHERE database_name = ? AND schema_name = ?", list(place)
        ).fetchall()[0]
        return bool(found) and (dataset != "main" or bool(self.tables(project, dataset)))

    def list_datasets(self, project: str) -> list[str]:
        names = set()
        alias = self.aliases.get(self.storage.project_file(project))
        if alias is not None:
            rows = self.con.execute("SELECT schema_name FROM duckdb_schemas() WHERE database_name = ?",
                                    [alias]).fetchall()
            names |= {name for (name,) in rows if name not in _HIDDEN_SCHEMAS and _DATASET_ID.match(name)}
        names |= {d for (p, d) in self.storage.datasets if p == project and self.dataset_exists(p, d)}
        return sorted(n for n in names if self.dataset_exists(project, n))

    def location(self, project: str, dataset: str) -> str:
        row = self.storage.catalog.dataset(project, dataset)
        return row["location"] if row else self.storage.default_location

    def create_dataset(self, project: str, dataset: str) -> None:
        alias, schema = self._require_place(project, dataset)
        self.con.execute(f"CREATE SCHEMA {quote(alias)}.{quote(schema)}")

    def drop_dataset(self, project: str, dataset: str) -> None:
        alias, schema = self._require_place(project, dataset)
        self.con.execute(f"DROP SCHEMA {quote(alias)}.{quote(schema)} CASCADE")
        self._tables.clear()

    # tables --------------------------------------------------------------------------------------
    def tables(self, project: str, dataset: str) -> dict[str, str]:
        """table name -> TABLE or VIEW, without the `__TABLES__` meta-table."""
        key = (project, dataset)
        if key not in self._tables:
            place = self.place(project, dataset)
            if place is None:
                return {}
            rows = self.con.execute(
                "SELECT table_name, 'TABLE' FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
                "UNION ALL SELECT view_name, 'VIEW' FROM duckdb_views() WHERE database_name = ? AND schema_name = ? "
                "AND NOT internal", [*place, *place]).fetchall()
            self._tables[key] = {name: kind for name, kind in rows if name != META_TABLE}
        return self._tables[key]

    def forget(self) -> None:
        """Drop cached listings after DDL."""
        self._tables.clear()

    def table_exists(self, project: str, dataset: str, table: str) -> bool:
        return table in self.tables(project, dataset)

    def columns(self, project: str, dataset: str, table: str) -> list[tuple[str, str, bool]]:
        alias, schema = self._require_place(project, dataset)
        return [(name, kind, nullable) for name, kind, nullable in self.con.execute(
            "SELECT column_name, data_type, is_nullable FROM duckdb_columns() WHERE database_name = ? "
            "AND schema_name = ? AND table_name = ? ORDER BY column_index", [alias, schema, table]).fetchall()]

    def fields(self, project: str, dataset: str, table: str) -> list[Field]:
        """The table's BigQuery schema: DuckDB's columns, with descriptions and nested modes recorded."""
        notes = (self.storage.catalog.table(project, dataset, table) or {}).get("notes") or {}
        return [_annotate(field_from_duckdb(name, kind, nullable), notes, name)
                for name, kind, nullable in self.columns(project, dataset, table)]

    def row_count(self, project: str, dataset: str, table: str) -> int:
        (count,) = self.con.execute(f"SELECT count(*) FROM {self.ref(project, dataset, table)}").fetchall()[0]
        return int(count)

    def physical_meta(self, project: str, dataset: str) -> dict[str, dict]:
        """Rows of a producer-maintained `__TABLES__` table in the dataset's file, by table id."""
        place = self.place(project, dataset)
        if place is None:
            return {}
        (exists,) = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
            [*place, META_TABLE]).fetchall()[0]
        if not exists:
            return {}
        result = self.con.execute(f"SELECT * FROM {quote(place[0])}.{quote(place[1])}.{quote(META_TABLE)}")
        names = [d[0] for d in result.description]
        rows = [dict(zip(names, row)) for row in result.fetchall()]
        return {row["table_id"]: row for row in rows if "table_id" in row}

    def table_times(self, project: str, dataset: str, table: str,
                    physical: dict[str, dict] | None = None) -> tuple[int, int]:
        """(creation, last modification) in ms: the later of the producer's and the stand-in's records."""
        recorded = self.storage.catalog.table(project, dataset, table)
        produced = (physical if physical is not None else self.physical_meta(project, dataset)).get(table)
        if produced is not None:
            creation = int(produced.get("creation_time") or 0)
            modified = int(produced.get("last_modified_time") or creation)
            if recorded is not None:
                modified = max(modified, int(recorded["modified_ms"]))
            return creation, modified
        if recorded is not None:
            return int(recorded["creation_ms"]), int(recorded["modified_ms"])
        mtime = int(self.storage.source(project, dataset).path.stat().st_mtime * 1000)
        return mtime, mtime

    def size_bytes(self, fields: list[Field], rows: int, produced: dict | None = None) -> int:
        if produced is not None and produced.get("size_bytes") is not None:
            return int(produced["size_bytes"])
        return rows * sum(_logical_bytes(f) for f in fields)

    def meta_rows(self, project: str, dataset: str) -> list[dict]:
        """The dataset's `__TABLES__` rows."""
        physical = self.physical_meta(project, dataset)
        rows = []
        for table, kind in sorted(self.tables(project, dataset).items()):
            creation, modified = self.table_times(project, dataset, table, physical)
            count = self.row_count(project, dataset, table) if kind == "TABLE" else 0
            produced = physical.get(table)
            if kind != "TABLE":
                size = 0
            elif produced is not None and produced.get("size_bytes") is not None:
                size = int(produced["size_bytes"])  # the producer's figure: no need to read the columns
            else:
                size = self.size_bytes(self.fields(project, dataset, table), count)
            rows.append({
                "project_id": project, "dataset_id": dataset, "table_id": table, "creation_time": creation,
                "last_modified_time": modified, "row_count": count, "size_bytes": size,
                "type": TABLE_TYPE_CODES[kind],
            })
        return rows


def _annotate(f: Field, notes: dict, path: str) -> Field:
    from dataclasses import replace

    note = notes.get(path.lower()) or {}
    children = tuple(_annotate(sub, notes, f"{path}.{sub.name}") for sub in f.fields)
    mode = note.get("mode") if note.get("mode") == "REQUIRED" and not f.repeated else f.mode
    return replace(f, fields=children, description=note.get("description") or f.description, mode=mode)


def field_notes(fields: list[Field], prefix: str = "") -> dict:
    """What DuckDB's types cannot hold (descriptions, REQUIRED nested fields), by lower-cased dotted path."""
    notes = {}
    for f in fields:
        path = f"{prefix}{f.name}".lower()
        note = {}
        if f.description:
            note["description"] = f.description
        if f.mode == "REQUIRED":
            note["mode"] = "REQUIRED"
        if note:
            notes[path] = note
        notes.update(field_notes(list(f.fields), path + "."))
    return notes


def _logical_bytes(f: Field) -> int:
    if f.type == "RECORD":
        size = sum(_logical_bytes(sub) for sub in f.fields)
    else:
        size = _LOGICAL_BYTES.get(f.type, 8)
    return size * 2 if f.repeated else size  # an array: assume two elements on average
