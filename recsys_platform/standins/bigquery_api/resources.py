"""Datasets, tables and table data: the REST resources besides jobs.

Resource JSON follows BigQuery's v2 reference field for field (`datasetReference`, `tableReference`,
`schema.fields[].name/type/mode/fields`, `numRows`/`numBytes`/`creationTime`/`lastModifiedTime` as
int64 strings, `timePartitioning`, `clustering`, `type`), because google-cloud-bigquery's `Dataset`,
`Table` and `RowIterator` read exactly those.

tables.patch follows BigQuery's schema rules: the new schema keeps every field (a missing one is refused),
may add NULLABLE or REPEATED fields (top level or nested in a RECORD) and relax REQUIRED to NULLABLE, and
never changes a type. tabledata.list pages a table in storage order with opaque page tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json

import duckdb
import pyarrow as pa

from recsys_platform.standins.bigquery_api.errors import (
    BigQueryError,
    dataset_name,
    duplicate,
    invalid,
    not_found,
    table_name,
)
from recsys_platform.standins.bigquery_api.execute import (
    check_clustering,
    check_partition_field,
    duckdb_error,
    evolve_table,
    partitioning_from_api,
)
from recsys_platform.standins.bigquery_api.jobs import Jobs, decode_offset, encode_offset
from recsys_platform.standins.bigquery_api.rows import encode_rows
from recsys_platform.standins.bigquery_api.schema import (
    Field,
    fields_from_api,
    merge_for_write,
    needs_cast,
    quote,
)
from recsys_platform.standins.bigquery_api.storage import (
    Session,
    Storage,
    field_notes,
    validate_dataset,
    validate_project,
    validate_table,
)


class Resources:
    def __init__(self, storage: Storage, jobs: Jobs):
        self.storage = storage
        self.jobs = jobs

    # sessions ----------------------------------------------------------------------------------
    def _reading(self, project: str, dataset: str | None = None):
        validate_project(project)
        files = self.storage.files(project) if dataset is None else {self.storage.source(project, dataset).path}
        return self.storage.session(read=files)

    def _writing(self, project: str, dataset: str):
        validate_project(project)
        return self.storage.session(write={self.storage.source(project, dataset).path})

    def _require_dataset(self, session: Session, project: str, dataset: str) -> None:
        if not session.dataset_exists(project, dataset):
            raise not_found(f"Dataset {dataset_name(project, dataset)}")

    # projects ----------------------------------------------------------------------------------
    def list_projects(self) -> dict:
        projects = self.storage.served_projects()
        return {"kind": "bigquery#projectList", "etag": _etag(projects), "totalItems": len(projects),
                "projects": [{"kind": "bigquery#project", "id": p, "numericId": str(_numeric_id(p)),
                              "projectReference": {"projectId": p}, "friendlyName": p} for p in projects]}

    # datasets ----------------------------------------------------------------------------------
    def list_datasets(self, project: str, params: dict) -> dict:
        with self._reading(project) as session:
            names = session.list_datasets(project)
            entries = [{"kind": "bigquery#dataset", "id": dataset_name(project, d),
                        "datasetReference": {"projectId": project, "datasetId": d},
                        "location": session.location(project, d)} for d in names]
        out = {"kind": "bigquery#datasetList", "etag": _etag(names)}
        page, token = _paginate(entries, params, f"datasets:{project}")
        if page:
            out["datasets"] = page
        if token:
            out["nextPageToken"] = token
        return out

    def get_dataset(self, project: str, dataset: str) -> dict:
        validate_dataset(dataset)
        with self._reading(project, dataset) as session:
            self._require_dataset(session, project, dataset)
            return self._dataset_resource(session, project, dataset)

    def _dataset_resource(self, session: Session, project: str, dataset: str) -> dict:
        row = self.storage.catalog.dataset(project, dataset)
        if row is None:
            mtime = int(self.storage.source(project, dataset).path.stat().st_mtime * 1000)
            row = {"creation_ms": mtime, "modified_ms": mtime, "location": self.storage.default_location,
                   "description": None, "labels": {}}
        resource = {
            "kind": "bigquery#dataset",
            "id": dataset_name(project, dataset),
            "datasetReference": {"projectId": project, "datasetId": dataset},
            "location": row["location"],
            "creationTime": str(row["creation_ms"]),
            "lastModifiedTime": str(row["modified_ms"]),
            "type": "DEFAULT",
            "access": [],
        }
        if row.get("description"):
            resource["description"] = row["description"]
        if row.get("labels"):
            resource["labels"] = row["labels"]
        resource["etag"] = _etag(resource)
        return resource

    def insert_dataset(self, project: str, body: dict) -> dict:
        reference = body.get("datasetReference") or {}
        dataset = validate_dataset(reference.get("datasetId", ""))
        if reference.get("projectId") not in (None, project):
            raise invalid(f"Dataset project {reference.get('projectId')} does not match the request's {project}")
        location = body.get("location") or self.storage.default_location
        with self._writing(project, dataset) as session:
            if session.dataset_exists(project, dataset):
                raise duplicate(f"Dataset {dataset_name(project, dataset)}")
            try:
                session.create_dataset(project, dataset)
            except duckdb.Error as error:
                raise duckdb_error(error, session) from None
            self.storage.catalog.put_dataset(project, dataset, location, body.get("description"),
                                             body.get("labels"))
            return self._dataset_resource(session, project, dataset)

    def patch_dataset(self, project: str, dataset: str, body: dict) -> dict:
        validate_dataset(dataset)
        with self._reading(project, dataset) as session:
            self._require_dataset(session, project, dataset)
            row = self.storage.catalog.dataset(project, dataset) or {}
            location = row.get("location") or self.storage.default_location
            if body.get("location") and body["location"].lower() != location.lower():
                raise invalid("Cannot change dataset location")
            self.storage.catalog.put_dataset(
                project, dataset, location, body.get("description", row.get("description")),
                body.get("labels", row.get("labels")), creation_ms=row.get("creation_ms"))
            return self._dataset_resource(session, project, dataset)

    def delete_dataset(self, project: str, dataset: str, params: dict) -> None:
        validate_dataset(dataset)
        with self._writing(project, dataset) as session:
            self._require_dataset(session, project, dataset)
            if session.tables(project, dataset) and str(params.get("deleteContents", "")).lower() != "true":
                raise BigQueryError("resourceInUse", f"Dataset {dataset_name(project, dataset)} is still in use",
                                    status=400)
            session.drop_dataset(project, dataset)
        self.storage.catalog.delete_dataset(project, dataset)

    # tables ------------------------------------------------------------------------------------
    def list_tables(self, project: str, dataset: str, params: dict) -> dict:
        validate_dataset(dataset)
        with self._reading(project, dataset) as session:
            self._require_dataset(session, project, dataset)
            physical = session.physical_meta(project, dataset)
            entries = []
            for table, kind in sorted(session.tables(project, dataset).items()):
                recorded = self.storage.catalog.table(project, dataset, table) or {}
                creation, _ = session.table_times(project, dataset, table, physical)
                entry = {"kind": "bigquery#table", "id": table_name(project, dataset, table),
                         "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table},
                         "type": kind, "creationTime": str(creation)}
                if recorded.get("partitioning"):
                    entry["timePartitioning"] = recorded["partitioning"]
                if recorded.get("clustering"):
                    entry["clustering"] = recorded["clustering"]
                entries.append(entry)
        out = {"kind": "bigquery#tableList", "etag": _etag([e["id"] for e in entries]), "totalItems": len(entries)}
        page, token = _paginate(entries, params, f"tables:{project}:{dataset}")
        if page:
            out["tables"] = page
        if token:
            out["nextPageToken"] = token
        return out

    def get_table(self, project: str, dataset: str, table: str) -> dict:
        validate_dataset(dataset)
        with self._reading(project, dataset) as session:
            self._require_table(session, project, dataset, table)
            return self._table_resource(session, project, dataset, table)

    def _require_table(self, session: Session, project: str, dataset: str, table: str) -> None:
        self._require_dataset(session, project, dataset)
        if not session.table_exists(project, dataset, table):
            raise not_found(f"Table {table_name(project, dataset, table)}")

    def _table_resource(self, session: Session, project: str, dataset: str, table: str) -> dict:
        recorded = self.storage.catalog.table(project, dataset, table) or {}
        physical = session.physical_meta(project, dataset)
        creation, modified = session.table_times(project, dataset, table, physical)
        fields = session.fields(project, dataset, table)
        kind = session.tables(project, dataset)[table]
        rows = session.row_count(project, dataset, table) if kind == "TABLE" else 0
        resource = {
            "kind": "bigquery#table",
            "id": table_name(project, dataset, table),
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table},
            "schema": {"fields": [f.to_api() for f in fields]},
            "numRows": str(rows),
            "numBytes": str(session.size_bytes(fields, rows, physical.get(table))),
            "numLongTermBytes": "0",
            "creationTime": str(creation),
            "lastModifiedTime": str(modified),
            "type": kind,
            "location": session.location(project, dataset),
        }
        if recorded.get("partitioning"):
            resource["timePartitioning"] = recorded["partitioning"]
        if recorded.get("clustering"):
            resource["clustering"] = recorded["clustering"]
        if recorded.get("description"):
            resource["description"] = recorded["description"]
        if recorded.get("labels"):
            resource["labels"] = recorded["labels"]
        resource["etag"] = _etag({k: resource[k] for k in ("schema", "lastModifiedTime", "numRows")})
        return resource

    def insert_table(self, project: str, dataset: str, body: dict) -> dict:
        reference = body.get("tableReference") or {}
        table = validate_table(reference.get("tableId", ""))
        validate_dataset(dataset)
        if body.get("view") or body.get("materializedView") or body.get("externalDataConfiguration"):
            raise invalid("This BigQuery stand-in creates native tables only (no views or external tables)")
        fields = fields_from_api(body.get("schema"))
        if not fields:
            raise invalid("This BigQuery stand-in needs a schema to create a table (DuckDB tables have columns)")
        partitioning = _partitioning(body.get("timePartitioning"), fields)
        clustering = body.get("clustering") or None
        if clustering:
            check_clustering(clustering.get("fields") or [], fields)
        with self._writing(project, dataset) as session:
            self._require_dataset(session, project, dataset)
            if session.table_exists(project, dataset, table):
                raise duplicate(f"Table {table_name(project, dataset, table)}")
            columns = ", ".join(f"{quote(f.name)} {f.duckdb_type()}{' NOT NULL' if f.mode == 'REQUIRED' else ''}"
                                for f in fields)
            try:
                session.con.execute(f"CREATE TABLE {session.ref(project, dataset, table)} ({columns})")
            except duckdb.Error as error:
                raise duckdb_error(error, session) from None
            session.forget()
            self.storage.catalog.create_table(project, dataset, table, partitioning=partitioning,
                                              clustering=clustering, description=body.get("description"),
                                              labels=body.get("labels"), notes=field_notes(fields))
            return self._table_resource(session, project, dataset, table)

    def patch_table(self, project: str, dataset: str, table: str, body: dict, if_match: str | None) -> dict:
        validate_dataset(dataset)
        with self._writing(project, dataset) as session:
            self._require_table(session, project, dataset, table)
            current = self._table_resource(session, project, dataset, table)
            if if_match and if_match.strip('"') != current["etag"].strip('"'):
                raise BigQueryError("conditionNotMet", "Precondition check failed.", status=412)
            recorded = self.storage.catalog.table(project, dataset, table) or {}
            changes = {}
            if "timePartitioning" in body and _partitioning(body["timePartitioning"], session.fields(
                    project, dataset, table)) != recorded.get("partitioning"):
                raise invalid("Cannot change partitioning spec of a partitioned table, or partition a table that "
                              "is not partitioned")
            if body.get("schema") is not None:
                new_fields = fields_from_api(body["schema"])
                old_fields = session.fields(project, dataset, table)
                name = table_name(project, dataset, table)
                _require_all_fields(old_fields, new_fields, name)
                merged = merge_for_write(old_fields, new_fields, name, allow_addition=True, allow_relaxation=True)
                ref = session.ref(project, dataset, table)
                try:
                    session.con.execute("BEGIN TRANSACTION")
                    evolve_table(session.con, ref, old_fields, merged)
                    session.con.execute("COMMIT")
                except duckdb.Error as error:
                    session.con.execute("ROLLBACK")
                    raise duckdb_error(error, session) from None
                session.forget()
                changes["notes"] = field_notes(new_fields)
            if "clustering" in body:
                clustering = body["clustering"] or None
                if clustering:
                    check_clustering(clustering.get("fields") or [], session.fields(project, dataset, table))
                changes["clustering"] = clustering
            for key in ("description", "labels"):
                if key in body:
                    changes[key] = body[key]
            creation, _ = session.table_times(project, dataset, table)
            self.storage.catalog.update_table(project, dataset, table, creation_ms=creation, **changes)
            return self._table_resource(session, project, dataset, table)

    def delete_table(self, project: str, dataset: str, table: str) -> None:
        validate_dataset(dataset)
        with self._writing(project, dataset) as session:
            self._require_table(session, project, dataset, table)
            kind = session.tables(project, dataset)[table]
            try:
                session.con.execute(f"DROP {kind} {session.ref(project, dataset, table)}")
            except duckdb.Error as error:
                raise duckdb_error(error, session) from None
        self.storage.catalog.delete_table(project, dataset, table)

    # table data --------------------------------------------------------------------------------
    def list_rows(self, project: str, dataset: str, table: str, params: dict) -> dict:
        validate_dataset(dataset)
        with self._reading(project, dataset) as session:
            self._require_table(session, project, dataset, table)
            fields = session.fields(project, dataset, table)
            types = {name: kind for name, kind, _ in session.columns(project, dataset, table)}
            selected = params.get("selectedFields")
            if selected:
                wanted = {s.split(".")[0].strip().lower() for s in selected.split(",") if s.strip()}
                fields = [f for f in fields if f.name.lower() in wanted]
            total = session.row_count(project, dataset, table)
            scope = f"rows:{project}:{dataset}:{table}"
            start = decode_offset(params["pageToken"], scope) if params.get("pageToken") else \
                int(params.get("startIndex") or 0)
            requested = params.get("maxResults")
            limit = self.jobs.default_page_rows if requested in (None, "") else int(requested)
            count = max(0, min(limit, total - start))
            columns = ", ".join(
                f"CAST({quote(f.name)} AS {f.duckdb_type()}) AS {quote(f.name)}" if needs_cast(types[f.name], f)
                else quote(f.name) for f in fields)
            batch = pa.table({})
            if count and fields:
                try:
                    batch = session.con.sql(
                        f"SELECT {columns} FROM {session.ref(project, dataset, table)} ORDER BY rowid "
                        f"LIMIT {count} OFFSET {start}").to_arrow_table()
                except duckdb.Error as error:
                    raise duckdb_error(error, session) from None
            while count > 1 and batch.nbytes * 4 > self.jobs.max_page_bytes:
                count //= 2
                batch = batch.slice(0, count)
        int64 = str(params.get("formatOptions.useInt64Timestamp", "")).lower() == "true"
        out = {"kind": "bigquery#tableDataList", "etag": _etag([scope, total, start]), "totalRows": str(total)}
        rows = encode_rows(batch, fields, int64) if count and fields else []
        if rows:
            out["rows"] = rows
        if count and start + count < total:
            out["pageToken"] = encode_offset(start + count, scope)
        return out


def _require_all_fields(old: list[Field], new: list[Field], name: str, prefix: str = "") -> None:
    by_name = {f.name.lower(): f for f in new}
    for f in old:
        match = by_name.get(f.name.lower())
        if match is None:
            raise invalid(f"Provided Schema does not match Table {name}. Field {prefix}{f.name} is missing in new "
                          "schema")
        if f.type == "RECORD" and match.type == "RECORD":
            _require_all_fields(list(f.fields), list(match.fields), name, f"{prefix}{f.name}.")


def _partitioning(resource: dict | None, fields: list[Field]) -> dict | None:
    if not resource:
        return None
    spec = partitioning_from_api(resource)
    check_partition_field(spec, fields)
    return spec


def _paginate(entries: list, params: dict, scope: str) -> tuple[list, str | None]:
    start = decode_offset(params["pageToken"], scope) if params.get("pageToken") else 0
    size = int(params.get("maxResults") or 1000)
    page = entries[start:start + size]
    return page, (encode_offset(start + size, scope) if start + size < len(entries) else None)


def _etag(value) -> str:
    digest = hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).digest()
    return base64.b64encode(digest[:12]).decode()


def _numeric_id(project: str) -> int:
    return int(hashlib.sha1(project.encode()).hexdigest()[:12], 16)

