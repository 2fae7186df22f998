"""Query jobs: jobs.insert, jobs.get, jobs.cancel, jobs.query and jobs.getQueryResults.

jobs.insert answers at once with the job PENDING or RUNNING (or DONE, if it finished within a short
wait), and one worker thread runs jobs in order, as the DuckDB work is serialised anyway. Clients then
poll: `QueryJob.result()` calls jobs.get and jobs.getQueryResults, which waits up to `timeoutMs` for
the job, then answers `jobComplete: false` or the first page. A failed job carries its error in
`status.errorResult`; getQueryResults answers that error with its HTTP status, which is how the client
raises BadRequest / NotFound for a bad query.

Jobs are kept in the catalog (so jobs.get works after a restart; a job that was running when the
stand-in stopped is reported failed), and a SELECT's rows stay in an Arrow file for 24 hours, as
BigQuery keeps a query's temporary result table, so pages can be read at any time.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlglot import exp

from recsys_platform.standins.bigquery_api.catalog import now_ms
from recsys_platform.standins.bigquery_api.errors import BigQueryError, duplicate, invalid, not_found
from recsys_platform.standins.bigquery_api.execute import (
    Execution,
    QueryResult,
    duckdb_error,
    is_script,
    parse_script,
    write_targets,
)
from recsys_platform.standins.bigquery_api.params import number_positional, parse_parameters
from recsys_platform.standins.bigquery_api.rows import encode_rows
from recsys_platform.standins.bigquery_api.schema import fields_from_api
from recsys_platform.standins.bigquery_api.storage import Storage
from recsys_platform.standins.bigquery_api.translate import Context, qualify_name

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,1024}$")
RESULT_RETENTION_MS = 24 * 3600 * 1000
MAX_WAIT_SECONDS = 10.0  # getQueryResults and jobs.query hold a request at most this long


@dataclass
class Job:
    resource: dict  # changed by the worker thread, read by request threads: both under `lock`
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancel_requested: bool = False
    session: object | None = None


class Jobs:
    def __init__(self, storage: Storage, *, insert_wait_seconds: float = 0.5, default_page_rows: int = 100_000,
                 max_page_bytes: int = 10 * 1024 * 1024):
        self.storage = storage
        self.results_root = storage.data_dir / "results"
        self.insert_wait_seconds = insert_wait_seconds
        self.default_page_rows = default_page_rows
        self.max_page_bytes = max_page_bytes
        self._jobs: dict[tuple[str, str], Job] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bigquery-job")
        self._tables: OrderedDict[Path, pa.Table] = OrderedDict()
        self._recover()

    def close(self) -> None:
        """Stop: queued jobs never start, a running one is interrupted (and reported cancelled)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel_requested = True
            if job.session is not None:
                try:
                    job.session.con.interrupt()
                except duckdb.Error:
                    pass
        self._executor.shutdown(wait=True, cancel_futures=True)

    # lifecycle ---------------------------------------------------------------------------------
    def _recover(self) -> None:
        """Forget results older than 24 h; report jobs a previous process left unfinished as failed."""
        for project, job_id in self.storage.catalog.forget_jobs_before(now_ms() - RESULT_RETENTION_MS):
            for path in (self.results_root / project).glob(f"{job_id}*.arrow"):
                path.unlink(missing_ok=True)
        for resource in self.storage.catalog.unfinished_jobs():
            self._finish(Job(resource), BigQueryError(
                "backendError", "The BigQuery stand-in stopped while this job was running; run it again"))

    def insert(self, project: str, body: dict, user_email: str) -> dict:
        reference = body.get("jobReference") or {}
        if reference.get("projectId") not in (None, project):
            raise invalid(f"Job project {reference.get('projectId')} does not match the request's {project}")
        job_id = reference.get("jobId") or f"job_{uuid.uuid4().hex}"
        if not _JOB_ID.match(job_id):
            raise invalid(f"Invalid job ID \"{job_id}\": letters, digits, dashes and underscores only")
        configuration = dict(body.get("configuration") or {})
        if "query" not in configuration:
            kinds = ", ".join(k for k in configuration if k in ("load", "copy", "extract")) or "this"
            raise invalid(f"This BigQuery stand-in runs query jobs only, not {kinds} jobs")
        query = dict(configuration["query"])
        if not isinstance(query.get("query"), str) or not query["query"].strip():
            raise invalid("Required parameter is missing: configuration.query.query")
        configuration["query"] = query
        configuration.setdefault("jobType", "QUERY")
        location = reference.get("location")
        resource = {
            "kind": "bigquery#job",
            "id": f"{project}:{location or ''}.{job_id}" if location else f"{project}:{job_id}",
            "jobReference": {"projectId": project, "jobId": job_id, **({"location": location} if location else {})},
            "configuration": configuration,
            "status": {"state": "PENDING"},
            "statistics": {"creationTime": str(now_ms())},
            "user_email": user_email,
            "principal_subject": f"serviceAccount:{user_email}",
        }
        with self._lock:
            if (project, job_id) in self._jobs or self.storage.catalog.job(project, job_id) is not None:
                raise duplicate(f"Job {project}:{location or self.storage.default_location}.{job_id}")
            job = Job(resource)
            self._jobs[(project, job_id)] = job
        self.storage.catalog.put_job(resource)
        self._executor.submit(self._execute, job)
        job.done.wait(self.insert_wait_seconds)
        return _snapshot(job)

    def get(self, project: str, job_id: str, location: str | None = None) -> Job:
        with self._lock:
            job = self._jobs.get((project, job_id))
        if job is None:
            resource = self.storage.catalog.job(project, job_id)
            if resource is None:
                raise not_found(f"Job {project}:{location or self.storage.default_location}.{job_id}")
            job = Job(resource)
            if resource["status"]["state"] == "DONE":
                job.done.set()
        actual = job.resource["jobReference"].get("location")
        if location and actual and location.lower() != actual.lower():
            raise not_found(f"Job {project}:{location}.{job_id}")
        return job

    def resource(self, project: str, job_id: str, location: str | None = None) -> dict:
        return _snapshot(self.get(project, job_id, location))

    def cancel(self, project: str, job_id: str, location: str | None = None) -> dict:
        job = self.get(project, job_id, location)
        job.cancel_requested = True
        session = job.session
        if session is not None:
            try:
                session.con.interrupt()
            except duckdb.Error:
                pass
        return {"kind": "bigquery#jobCancelResponse", "job": _snapshot(job)}

    def list(self, project: str, max_results: int | None, page_token: str | None, state_filter: list[str]) -> dict:
        resources = self.storage.catalog.jobs(project)
        if state_filter:
            wanted = {s.upper() for s in state_filter}
            resources = [r for r in resources if r["status"]["state"] in wanted]
        start = _decode_offset(page_token, f"jobs:{project}") if page_token else 0
        size = max_results or 1000
        page = resources[start:start + size]
        out = {"kind": "bigquery#jobList", "jobs": [
            {**{k: r[k] for k in ("id", "jobReference", "configuration", "status", "statistics", "user_email")
                if k in r}, "state": r["status"]["state"], **({"errorResult": r["status"]["errorResult"]}
                                                              if "errorResult" in r["status"] else {})}
            for r in page]}
        if start + size < len(resources):
            out["nextPageToken"] = _encode_offset(start + size, f"jobs:{project}")
        return out

    # running -----------------------------------------------------------------------------------
    def _execute(self, job: Job) -> None:
        resource = job.resource
        project = resource["jobReference"]["projectId"]
        job_id = resource["jobReference"]["jobId"]
        if job.cancel_requested:
            self._finish(job, BigQueryError("stopped", "Job execution was cancelled: User requested cancellation"))
            return
        with job.lock:
            resource["status"] = {"state": "RUNNING"}  # not stored: a stored PENDING job is as unfinished
            resource["statistics"]["startTime"] = str(now_ms())
        error = None
        try:
            outcome = self._run(job, project, job_id)
            with job.lock:
                self._record(resource, outcome)
        except BigQueryError as failure:
            error = failure
        except duckdb.Error as failure:
            error = duckdb_error(failure)
        except Exception as failure:  # a defect of the stand-in: reported as BigQuery reports its own
            log.exception("job %s failed unexpectedly", job_id)
            error = BigQueryError("internalError", f"An internal error occurred: {type(failure).__name__}: "
                                                   f"{failure}")
        finally:
            job.session = None
        if error is not None and job.cancel_requested and error.reason != "stopped":
            error = BigQueryError("stopped", "Job execution was cancelled: User requested cancellation")
        self._finish(job, error)

    def _run(self, job: Job, project: str, job_id: str):
        configuration = job.resource["configuration"]
        config = configuration["query"]
        if config.get("useLegacySql", True) is not False:
            raise invalid("Legacy SQL is not supported by this BigQuery stand-in: set useLegacySql to false "
                          "(google-cloud-bigquery does by default)")
        if configuration.get("dryRun"):
            raise invalid("dryRun is not supported by this BigQuery stand-in")
        named, positional = parse_parameters(config)
        sql = config["query"]
        if positional:
            sql = number_positional(sql, positional)
            named = {p.duckdb_name: p for p in positional}
        statements = parse_script(sql)
        default = config.get("defaultDataset") or None
        ctx = Context(project, job.resource["jobReference"].get("location"),
                      (default.get("projectId") or project, default["datasetId"]) if default else None, named)
        destination = config.get("destinationTable")
        if destination and is_script(statements):
            raise invalid("configuration.query.destinationTable cannot be set for scripts")
        reads, writes = self._files(statements, ctx, destination)
        with self.storage.session(reads, writes) as session:
            job.session = session
            if job.cancel_requested:
                raise BigQueryError("stopped", "Job execution was cancelled: User requested cancellation")
            execution = Execution(session, ctx, self.results_root / project, job_id)
            outcome = execution.run(statements, destination, config)
        location = ctx.location or self.storage.default_location
        with job.lock:
            job.resource["jobReference"]["location"] = location
            job.resource["id"] = f"{project}:{location}.{job_id}"
        return outcome

    def _files(self, statements, ctx: Context, destination: dict | None) -> tuple[set[Path], set[Path]]:
        """The DuckDB files a job reads and writes, so a session attaches each in the right mode."""
        reads, writes = set(), set()
        for tree in statements:
            kind = (tree.args.get("kind") or "").upper() if isinstance(tree, (exp.Create, exp.Drop)) else ""
            targets = {id(t) for t in write_targets(tree)}
            if kind == "SCHEMA":
                for target in write_targets(tree):
                    dataset = target.args["db"].name if target.args.get("db") else target.name
                    project = target.args["catalog"].name if target.args.get("catalog") else ctx.project
                    writes.add(self.storage.source(project, dataset).path)
                continue
            cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
            for node in tree.find_all(exp.Table):
                if not isinstance(node.this, exp.Identifier):
                    continue
                try:
                    project, dataset, _ = qualify_name(node, ctx, cte_names)
                except BigQueryError:
                    continue  # reported with its statement
                if dataset is None:
                    continue
                (writes if id(node) in targets else reads).add(self.storage.source(project, dataset).path)
        if destination:
            writes.add(self.storage.source(destination.get("projectId") or ctx.project,
                                           destination.get("datasetId", "")).path)
        return reads, writes

    def _record(self, resource: dict, outcome) -> None:
        statistics = resource["statistics"]
        query = {"statementType": outcome.statement_type, "totalBytesProcessed": "0", "totalBytesBilled": "0",
                 "cacheHit": False}
        if outcome.referenced:
            query["referencedTables"] = [{"projectId": p, "datasetId": d, "tableId": t}
                                         for p, d, t in outcome.referenced]
        if outcome.result is not None:
            query["schema"] = {"fields": [f.to_api() for f in outcome.result.fields]}
            resource["_result"] = {"path": str(outcome.result.path), "totalRows": outcome.result.total_rows}
        if outcome.affected_rows is not None and outcome.statement_type != "SCRIPT":
            query["numDmlAffectedRows"] = str(outcome.affected_rows)
            if outcome.dml_stats:
                query["dmlStats"] = outcome.dml_stats
        if outcome.ddl_operation:
            query["ddlOperationPerformed"] = outcome.ddl_operation
        if outcome.ddl_target_table:
            p, d, t = outcome.ddl_target_table
            query["ddlTargetTable"] = {"projectId": p, "datasetId": d, "tableId": t}
        if outcome.ddl_target_dataset:
            p, d = outcome.ddl_target_dataset
            query["ddlTargetDataset"] = {"projectId": p, "datasetId": d}
        if outcome.statement_type == "SCRIPT":
            statistics["numChildJobs"] = str(outcome.statements)
        statistics["query"] = query
        statistics["totalBytesProcessed"] = "0"

    def _finish(self, job: Job, error: BigQueryError | None) -> None:
        with job.lock:
            resource = job.resource
            resource["statistics"].setdefault("startTime", resource["statistics"]["creationTime"])
            resource["statistics"]["endTime"] = str(now_ms())
            status = {"state": "DONE"}
            if error is not None:
                proto = error.error_proto()
                status["errorResult"] = proto
                status["errors"] = [proto]
            resource["status"] = status
            resource["jobReference"].setdefault("location", self.storage.default_location)
            self.storage.catalog.put_job(resource)
        job.done.set()
        with self._lock:  # a finished job is read from the catalog from now on: memory stays bounded
            self._jobs.pop((resource["jobReference"]["projectId"], resource["jobReference"]["jobId"]), None)

    # results -----------------------------------------------------------------------------------
    def query_results(self, project: str, job_id: str, params: dict[str, str]) -> dict:
        """jobs.getQueryResults."""
        job = self.get(project, job_id, params.get("location"))
        timeout = min(_int(params.get("timeoutMs"), 10_000) / 1000.0, MAX_WAIT_SECONDS)
        job.done.wait(timeout)
        resource = _snapshot(job)
        answer = {"kind": "bigquery#getQueryResultsResponse", "etag": _etag(resource),
                  "jobReference": resource["jobReference"], "jobComplete": job.done.is_set()}
        if not job.done.is_set():
            return answer
        return self._page(job, resource, answer, params)

    def query(self, project: str, body: dict, user_email: str) -> dict:
        """jobs.query: run a query as a job and answer with its first page."""
        configuration = {"query": {k: v for k, v in body.items()
                                   if k in ("query", "useLegacySql", "parameterMode", "queryParameters",
                                            "defaultDataset", "useQueryCache", "maximumBytesBilled", "labels",
                                            "createSession", "connectionProperties")}}
        configuration["query"].setdefault("useLegacySql", body.get("useLegacySql", True))
        if body.get("dryRun"):
            configuration["dryRun"] = True
        reference = {"projectId": project, "jobId": f"job_{uuid.uuid4().hex}"}
        if body.get("location"):
            reference["location"] = body["location"]
        resource = self.insert(project, {"jobReference": reference, "configuration": configuration}, user_email)
        job = self.get(project, resource["jobReference"]["jobId"])
        job.done.wait(min(_int(body.get("timeoutMs"), 10_000) / 1000.0, MAX_WAIT_SECONDS))
        resource = _snapshot(job)
        answer = {"kind": "bigquery#queryResponse", "jobReference": resource["jobReference"],
                  "jobComplete": job.done.is_set()}
        if not job.done.is_set():
            return answer
        params = {"maxResults": body.get("maxResults")} if body.get("maxResults") is not None else {}
        if (body.get("formatOptions") or {}).get("useInt64Timestamp"):
            params["formatOptions.useInt64Timestamp"] = "true"
        return self._page(job, resource, answer, params)

    def _page(self, job: Job, resource: dict, answer: dict, params: dict) -> dict:
        status = resource["status"]
        if "errorResult" in status:
            raise BigQueryError.from_proto(status["errorResult"])
        answer.update({"cacheHit": False, "totalBytesProcessed": "0"})
        statistics = resource["statistics"].get("query", {})
        if "numDmlAffectedRows" in statistics:
            answer["numDmlAffectedRows"] = statistics["numDmlAffectedRows"]
            if "dmlStats" in statistics:
                answer["dmlStats"] = statistics["dmlStats"]
        with job.lock:
            stored = job.resource.get("_result")
        if stored is None:
            return answer
        fields = fields_from_api(statistics["schema"])
        result = QueryResult(Path(stored["path"]), fields, int(stored["totalRows"]))
        answer["schema"] = statistics["schema"]
        answer["totalRows"] = str(result.total_rows)
        job_id = resource["jobReference"]["jobId"]
        start = _decode_offset(params["pageToken"], job_id) if params.get("pageToken") else \
            _int(params.get("startIndex"), 0)
        rows, next_start = self.read_page(result, start, params)
        if rows:
            answer["rows"] = rows
        if next_start is not None:
            answer["pageToken"] = _encode_offset(next_start, job_id)
        return answer

    def read_page(self, result: QueryResult, start: int, params: dict) -> tuple[list[dict], int | None]:
        """One page of a result: at most maxResults rows (all that fit in the byte budget if unset)."""
        requested = params.get("maxResults")
        limit = self.default_page_rows if requested in (None, "") else _int(requested, 0)
        if limit == 0 or start >= result.total_rows:
            return [], None
        table = self._result_table(result.path)
        count = min(limit, result.total_rows - start)
        # JSON text of a row is several times its Arrow size; keep a page under the response budget.
        while count > 1 and table.slice(start, count).nbytes * 4 > self.max_page_bytes:
            count //= 2
        int64 = str(params.get("formatOptions.useInt64Timestamp", "")).lower() == "true"
        rows = encode_rows(table.slice(start, count), result.fields, int64)
        end = start + count
        return rows, (end if end < result.total_rows else None)

    def _result_table(self, path: Path) -> pa.Table:
        with self._lock:
            table = self._tables.get(path)
            if table is not None:
                self._tables.move_to_end(path)
                return table
        if not path.exists():
            raise not_found("The query's results have expired (they are kept for 24 hours); run the query again")
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        with self._lock:
            self._tables[path] = table
            while len(self._tables) > 16:
                self._tables.popitem(last=False)
        return table


def _snapshot(job: Job) -> dict:
    with job.lock:
        resource = json.loads(json.dumps({k: v for k, v in job.resource.items() if not k.startswith("_")}))
    resource["etag"] = _etag(resource)
    return resource


def _etag(resource: dict) -> str:
    import hashlib

    digest = hashlib.sha1(json.dumps(resource.get("status"), sort_keys=True).encode()
                          + json.dumps(resource.get("statistics"), sort_keys=True).encode()).digest()
    return base64.b64encode(digest[:12]).decode()


def _int(value, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer value: {value}") from None


def _encode_offset(offset: int, scope: str) -> str:
    return base64.urlsafe_b64encode(f"{scope}\n{offset}".encode()).decode().rstrip("=")


def _decode_offset(token: str, scope: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        owner, _, offset = text.rpartition("\n")
        if owner == scope:
            return int(offset)
    except (ValueError, UnicodeDecodeError):
        pass
    raise invalid("Invalid page token")



def encode_offset(offset: int, scope: str) -> str:
    """An opaque page token for row `offset` of `scope` (a job or a table)."""
    return _encode_offset(offset, scope)


def decode_offset(token: str, scope: str) -> int:
    return _decode_offset(token, scope)
