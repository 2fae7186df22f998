"""The right to erasure: a user's deletion request reaches every table the platform derived from GA4 and the
product DB, every later snapshot, and Personalize.

GA4's own user deletion does not touch tables already exported, so the platform does it for what it
holds. Requests come from the product DB's `erasure_requests` (user_id, user_pseudo_id, requested_at; see
the product DB contract). The merge and the interactions SQL already leave requested users out of every
day they build; this asset removes what was built before the request, from `ga4_events`, the refined
tables and `interactions`, and runs Personalize's data deletion job for their USER_IDs, so the next
training no longer sees them. Running it again finds nothing left to delete and resumes (never repeats)
the Personalize job of the same requests.

Old snapshots in the lake are immutable and are not rewritten: they expire by the bucket's lifecycle rule
(README, "Production"), after which no copy of an erased user remains; no job imports an old snapshot.
"""

import datetime as dt
import hashlib

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
)

from recsys_platform.defs.ga4.events import ERASED_VISITORS_TABLE, WAREHOUSE_POOL, erased_visitors
from recsys_platform.defs.ga4.taxonomy import Taxonomy
from recsys_platform.defs.personalize.job_waiting import WaitPolicy, attempt_name, list_all, wait_until_active
from recsys_platform.defs.personalize.personalize_setup import PersonalizeSetup
from recsys_platform.defs.product_db.contract import ProductDbContract, contract_params, read_shop_sql
from recsys_platform.lib.lake import LakeResource
from recsys_platform.lib.personalize_clients import PersonalizeResource
from recsys_platform.lib.sql_files import read_sql
from recsys_platform.lib.warehouse.interface import Warehouse
from recsys_platform.shared.personalize_facts import ACTIVE, DATA_DELETION_COMPLETED

ERASURE_JOB = "erasure_job"
WAIT = WaitPolicy(poll_seconds=30, deadline_seconds=24 * 3600)


def _visitor_predicate(user_column: str, pseudo_column: str) -> str:
    return f"{user_column} IN UNNEST(@user_ids) OR {pseudo_column} IN UNNEST(@user_pseudo_ids)"


def build_erasure(taxonomy: Taxonomy, setup: PersonalizeSetup, contract: ProductDbContract,
                  wait: WaitPolicy = WAIT) -> AssetsDefinition:
    refined = [event.asset for event in taxonomy.events]

    @asset(
        name="erasure_requests_applied",
        group_name="privacy",
        kinds={"sql", "personalize"},
        pool=WAREHOUSE_POOL,
        deps=[["product_db", "erasure_requests"], "ga4_events", *refined, "interactions"],
        check_specs=[AssetCheckSpec(
            "erased_ids_absent", asset="erasure_requests_applied", blocking=True,
            description="No erased user_id, pseudo id or Personalize USER_ID is left in ga4_events, the refined "
                        "tables or interactions.",
        )],
    )
    def erasure_requests_applied(context: AssetExecutionContext, warehouse: Warehouse, lake: LakeResource,
                                 personalize: PersonalizeResource) -> MaterializeResult:
        """Every erasure request of the product DB applied: the users' rows deleted from ga4_events, the refined
        tables and interactions (their browsing before a login included), and Personalize's data deletion
        job run for their USER_IDs. Metadata: the outcome per request. Idempotent."""
        requests = warehouse.query(read_shop_sql(read_sql(__file__, "erasure_requests.sql"), contract, warehouse),
                                   contract_params(contract)).to_pylist()
        user_ids = sorted({r["user_id"] for r in requests if r["user_id"]})
        pseudo_ids = {r["user_pseudo_id"] for r in requests if r["user_pseudo_id"]}
        if user_ids and warehouse.has_table("ga4_events"):
            logged_in = warehouse.query(read_sql(__file__, "erased_visitors.sql"), {"user_ids": user_ids})
            pseudo_ids |= set(logged_in.column("user_pseudo_id").to_pylist())
        # Recorded before anything is deleted: once a user's logged-in rows are gone, the ledger is the only
        # place that still links their browsers to them (a re-merge of an old day reads it).
        pseudo_ids |= _record_erased_visitors(warehouse, pseudo_ids, context.run.run_id)
        params = {"user_ids": user_ids, "user_pseudo_ids": sorted(pseudo_ids)}
        personalize_ids = []
        if warehouse.has_table("interactions"):
            personalize_ids = sorted(warehouse.query(read_sql(__file__, "erased_personalize_users.sql"), params)
                                     .column("USER_ID").to_pylist())
        deletion = _personalize_deletion(context, warehouse, lake, personalize, setup, user_ids, personalize_ids, wait)
        deleted = {"ga4_events": warehouse.delete_rows("ga4_events", _visitor_predicate("user_id", "user_pseudo_id"),
                                                       params)}
        for table in refined:
            deleted[table] = warehouse.delete_rows(table, _visitor_predicate("user_id", "user_pseudo_id"), params)
        deleted["interactions"] = warehouse.delete_rows(
            "interactions", "USER_ID IN UNNEST(@personalize_ids)", {"personalize_ids": personalize_ids})
        left = _left_behind(warehouse, refined, params, personalize_ids)
        outcome = [{"user_id": r["user_id"], "user_pseudo_id": r["user_pseudo_id"],
                    "requested_at": str(r["requested_at"]), "status": "applied" if not left else "incomplete"}
                   for r in requests]
        context.log.info(f"erasure: {len(requests)} request(s), rows deleted {deleted}, Personalize {deletion}")
        return MaterializeResult(
            metadata={
                "requests": len(requests),
                "rows_deleted": MetadataValue.json(deleted),
                "personalize_user_ids": len(personalize_ids),
                "personalize_data_deletion": MetadataValue.json(deletion),
                "outcome_per_request": MetadataValue.json(outcome[:500]),
            },
            check_results=[AssetCheckResult(check_name="erased_ids_absent", passed=not left,
                                            metadata={"rows_left": MetadataValue.json(left)})],
        )

    return erasure_requests_applied


def _record_erased_visitors(warehouse: Warehouse, pseudo_ids: set[str], run_id: str) -> set[str]:
    """Add the browsers to `recsys.erased_visitors` (the day's partition is rewritten with what it held plus
    the new ones); returns every browser the ledger holds."""
    known = set(erased_visitors(warehouse))
    if pseudo_ids <= known:
        return known
    today = dt.datetime.now(dt.timezone.utc).date()
    recorded_today = set()
    if known:
        recorded_today = set(warehouse.query(
            f"SELECT user_pseudo_id FROM recsys.{ERASED_VISITORS_TABLE} WHERE erased_on = @today",
            {"today": today}).column("user_pseudo_id").to_pylist())
    warehouse.replace_partitions(
        ERASED_VISITORS_TABLE,
        "SELECT visitor AS user_pseudo_id, @today AS erased_on, @run_id AS erasure_run_id "
        "FROM UNNEST(@visitors) AS visitor",
        {"visitors": sorted(recorded_today | (pseudo_ids - known)), "today": today, "run_id": run_id},
        "erased_on", today, today,
    )
    return known | pseudo_ids


def _left_behind(warehouse: Warehouse, refined: list[str], params: dict, personalize_ids: list[str]) -> dict:
    """Rows of erased users still in each table (the check: all zero)."""
    left = {}
    for table in ["ga4_events", *refined]:
        if warehouse.has_table(table):
            n = warehouse.query(f"SELECT COUNT(*) AS n FROM recsys.{table} WHERE "
                                f"{_visitor_predicate('user_id', 'user_pseudo_id')}", params).to_pylist()[0]["n"]
            if n:
                left[table] = int(n)
    if warehouse.has_table("interactions"):
        n = warehouse.query("SELECT COUNT(*) AS n FROM recsys.interactions WHERE USER_ID IN UNNEST(@ids)",
                            {"ids": personalize_ids}).to_pylist()[0]["n"]
        if n:
            left["interactions"] = int(n)
    return left


def _data_deletion_jobs(client, group_arn: str) -> list[dict]:
    """ListDataDeletionJobs, every page (botocore has no paginator for it)."""
    jobs, token = [], None
    while True:
        page = client.list_data_deletion_jobs(datasetGroupArn=group_arn, **({"nextToken": token} if token else {}))
        jobs.extend(page.get("dataDeletionJobs", []))
        token = page.get("nextToken")
        if not token:
            return jobs


def _personalize_deletion(context, warehouse, lake: LakeResource, personalize: PersonalizeResource,
                          setup: PersonalizeSetup, user_ids: list[str], personalize_ids: list[str],
                          wait: WaitPolicy) -> dict:
    """Personalize's data deletion job for the users' USER_IDs, named after them: a re-run resumes it."""
    ids = sorted(set(user_ids) | set(personalize_ids))
    if not ids:
        return {"status": "nothing to delete"}
    client = personalize.get_client()
    group = next((g["datasetGroupArn"] for g in list_all(client, "list_dataset_groups", "datasetGroups")
                  if g["name"] == setup.dataset_group), None)
    if group is None:
        return {"status": "no dataset group yet: nothing was imported, nothing to delete"}
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    key = f"personalize/erasure/{digest}/users.csv"
    lake.put_text(key, "USER_ID\n" + "".join(f"{i}\n" for i in ids))  # immutable: same ids, same bytes
    jobs = _data_deletion_jobs(client, group)
    statuses = {j["jobName"]: ("ACTIVE" if j["status"] == DATA_DELETION_COMPLETED else j["status"]) for j in jobs}
    name, resumed = attempt_name(f"recsys-erasure-{digest}", statuses)
    if resumed:
        arn = next(j["dataDeletionJobArn"] for j in jobs if j["jobName"] == name)
    else:
        arn = client.create_data_deletion_job(
            jobName=name, datasetGroupArn=group, dataSource={"dataLocation": lake.uri(key)},
            roleArn=personalize.service_role_arn,
        )["dataDeletionJobArn"]

    def describe() -> dict:
        job = client.describe_data_deletion_job(dataDeletionJobArn=arn)["dataDeletionJob"]
        return {**job, "status": ACTIVE if job["status"] == DATA_DELETION_COMPLETED else job["status"]}

    job = wait_until_active(describe, f"data deletion job {name}", wait, log=context.log.info)
    return {"job": name, "arn": arn, "resumed": resumed, "users": len(ids),
            "records_deleted": job.get("numDeleted"), "input": lake.uri(key)}


def build_erasure_job_and_schedule(timezone: str):
    job = define_asset_job(ERASURE_JOB, selection=["erasure_requests_applied"],
                           description="Apply the product DB's erasure requests everywhere the platform keeps data.",
                           tags={"recsys/lane": "ga4"})
    # Daily, before the GA4 fallback run (10:00) and the retraining (11:00): a request never waits a training.
    schedule = ScheduleDefinition(name="erasure_schedule", job=job, cron_schedule="0 7 * * *",
                                  execution_timezone=timezone, default_status=DefaultScheduleStatus.RUNNING)
    return job, schedule
