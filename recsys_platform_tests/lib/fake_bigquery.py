"""A fake of BigQuery's REST API behind the real google-cloud-bigquery client.

The client serialises every job exactly as it would for Google; this fake records the requests and
answers jobs.insert / getQueryResults / jobs.get / tables.get with canned results, so tests can assert
the statements, parameters and job settings the warehouse sends."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import requests


@dataclass
class FakeBigQuery:
    project: str = "shop-project"
    # (regex on the SQL, schema [(name, type)], rows [tuple]) -- first match wins
    results: list[tuple[str, list[tuple[str, str]], list[tuple]]] = field(default_factory=list)
    existing_tables: set[str] = field(default_factory=set)
    jobs: list[dict] = field(default_factory=list)
    _answers: dict[str, tuple] = field(default_factory=dict)
    is_mtls: bool = False  # read by google-cloud-core when it picks the API endpoint

    def answer(self, pattern: str, schema: list[tuple[str, str]], rows: list[tuple]) -> None:
        self.results.append((pattern, schema, rows))

    @property
    def queries(self) -> list[str]:
        return [job["configuration"]["query"]["query"] for job in self.jobs]

    def parameters(self, index: int) -> dict:
        params = self.jobs[index]["configuration"]["query"].get("queryParameters", [])
        return {p["name"]: (p["parameterType"]["type"], p["parameterValue"].get("value")) for p in params}

    # requests.Session interface used by google-cloud-core
    def request(self, method, url, data=None, headers=None, timeout=None, **kwargs):
        path = url.split("/bigquery/v2", 1)[-1].split("?", 1)[0]
        if method == "POST" and re.fullmatch(r"/projects/[^/]+/jobs", path):
            job = json.loads(data)
            self.jobs.append(job)
            sql = job["configuration"]["query"]["query"]
            schema, rows = next(((s, r) for p, s, r in self.results if re.search(p, sql, re.S)), ([], []))
            self._answers[job["jobReference"]["jobId"]] = (schema, rows)
            return _response(200, {**job, "status": {"state": "DONE"},
                                   "statistics": {"query": {"totalBytesProcessed": "0"}}})
        match = re.fullmatch(r"/projects/[^/]+/queries/([^/]+)", path)
        if method == "GET" and match:
            schema, rows = self._answers[match.group(1)]
            return _response(200, {
                "kind": "bigquery#getQueryResultsResponse", "jobComplete": True,
                "jobReference": {"projectId": self.project, "jobId": match.group(1)},
                "schema": {"fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in schema]},
                "rows": [{"f": [{"v": None if v is None else str(v)} for v in row]} for row in rows],
                "totalRows": str(len(rows)),
            })
        match = re.fullmatch(r"/projects/[^/]+/jobs/([^/]+)", path)
        if method == "GET" and match:
            job = next(j for j in self.jobs if j["jobReference"]["jobId"] == match.group(1))
            return _response(200, {**job, "status": {"state": "DONE"}})
        match = re.fullmatch(r"/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)", path)
        if method == "GET" and match:
            name = ".".join(match.groups())
            if name in self.existing_tables:
                return _response(200, {"tableReference": dict(zip(("projectId", "datasetId", "tableId"),
                                                                  match.groups()))})
            return _response(404, {"error": {"code": 404, "message": f"Not found: Table {name}",
                                             "errors": [{"reason": "notFound"}]}})
        raise AssertionError(f"unexpected BigQuery call {method} {url}")


def _response(status: int, body: dict, method: str = "GET", url: str = "https://bigquery.googleapis.com/") \
        -> requests.Response:
    response = requests.Response()
    response.request = requests.Request(method, url).prepare()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["content-type"] = "application/json"
    return response


def tables_in(sql: str) -> set[str]:
    """Dataset-qualified names of the tables a BigQuery statement reads or writes (CTE names left out)."""
    import sqlglot

    return {
        ".".join(part for part in (t.catalog, t.db, t.name) if part)
        for tree in sqlglot.parse(sql, read="bigquery") if tree is not None
        for t in tree.find_all(sqlglot.exp.Table) if t.db
    }


def fake_client(fake: FakeBigQuery):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(project=fake.project, credentials=AnonymousCredentials(), _http=fake)
