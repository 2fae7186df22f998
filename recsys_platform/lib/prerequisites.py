"""Every prerequisite of the configured deployment, checked in one pass (`recsys-platform doctor`).

A deployment that lacks something fails late and one thing at a time: the first run finds no time zone,
the next no dataset, the one after that a bucket Personalize may not read. This module asks every question
up front, with the deployment's own resources (`resources_for(settings)`) and their clients, and returns
one `Report`: a `Check` per prerequisite, each OK, MISSING (something to create or set), FAILED (present
but wrong, or refused) or UNCHECKED (could not be asked: a check it depends on failed, or the platform's
identity may not read it), and every check that is not OK carries its fix.

`RECSYS_ENV=aws`: settings (time zone, required variables), GCP credentials (a token), each GA4 property's
export dataset and its location (one location for all), the platform dataset in that location
(`create_platform_dataset` creates it), the product DB replica dataset and its tables against the product
DB contract, each export's daily tables,
AWS credentials (sts:GetCallerIdentity) and the configured role, the bucket (reachable; a probe written
through the lake's own write path, with its server-side encryption; the bucket policy Personalize needs),
the Personalize service role (exists, trusts personalize.amazonaws.com, may use the lake, may be passed by
the platform's identity) and Personalize itself (ListDatasetGroups).
`RECSYS_ENV=local`: the state folder, the export and product DB files, the contract against the replica,
each property's daily export tables and the local Personalize. A check made once per GA4 property is named
`<check>[<property id>]` when the deployment reads several.

The product DB contract lives with the product DB stage (`defs/`), which this module may not import (the
layers point one way), so the caller passes it in as a `ReplicaContract`. google-cloud and boto3 are
imported inside the functions that use them.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field

from recsys_platform.settings import DEPLOYMENTS, PlatformSettings, SettingsError

OK, MISSING, FAILED, UNCHECKED = "OK", "MISSING", "FAILED", "UNCHECKED"
STATUSES = (OK, MISSING, FAILED, UNCHECKED)

PERSONALIZE_PRINCIPAL = "personalize.amazonaws.com"
# What Personalize does with the lake (Personalize developer guide, "Giving Amazon Personalize access to
# Amazon S3 resources"): list the bucket, read the import files, write batch inference output.
PERSONALIZE_BUCKET_ACTIONS = ("s3:GetObject", "s3:ListBucket", "s3:PutObject")
BIGQUERY_SCOPE = "https://www.googleapis.com/auth/bigquery"
PROBE_FOLDER = "_doctor"
_SAMPLE_OBJECT = "recsys-doctor-sample"  # stands for "any object under the lake prefix" in policy checks

# The variables `deployments.aws_resources` reads through EnvVar: without one, a resource cannot start.
REQUIRED_AWS_VARIABLES = {
    "RECSYS_GCP_PROJECT": "the GCP project that runs the platform's BigQuery jobs and holds its datasets",
    "RECSYS_BQ_DATASET": "the platform's BigQuery dataset (`recsys-platform doctor --create` creates it)",
    "RECSYS_BQ_PRODUCT_DATASET": "the BigQuery dataset the product DB replica (Datastream) writes to",
    "RECSYS_LAKE_BUCKET": "the S3 bucket that holds Personalize's input snapshots",
    "AWS_REGION": "the AWS region of Personalize (e.g. eu-west-1)",
    "RECSYS_PERSONALIZE_SERVICE_ROLE_ARN": "the IAM role Personalize assumes to read and write the lake",
}
# Names the README gives that nothing reads (deployments.py reads RECSYS_AWS_*): say so, never ignore them.
UNREAD_AWS_VARIABLES = {
    "RECSYS_PERSONALIZE_ROLE_ARN": "RECSYS_AWS_ROLE_ARN",
    "RECSYS_PERSONALIZE_EXTERNAL_ID": "RECSYS_AWS_EXTERNAL_ID",
}
_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/(?:(.*)/)?([\w+=,.@-]+)$")


# ---------------------------------------------------------------------------------------------------------
# the report

@dataclass
class Check:
    """One prerequisite: its name (`bigquery.platform_dataset`), status, what was found, and the fix."""

    name: str
    status: str
    summary: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")


@dataclass
class Report:
    deployment: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status == OK for c in self.checks)

    def to_dict(self) -> dict:
        return {"deployment": self.deployment, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}

    def render(self) -> str:
        """The report for a person: a line per check, what was found under it, then the fix."""
        width = max((len(c.name) for c in self.checks), default=10)
        indent = " " * (9 + 1 + width + 2)
        lines = [f"recsys-platform doctor: RECSYS_ENV={self.deployment}"]
        for check in self.checks:
            summary = check.summary.splitlines() or [""]
            lines.append(f"{check.status:<9} {check.name:<{width}}  {summary[0]}")
            lines.extend(indent + line for line in summary[1:])
            for i, line in enumerate(check.fix.splitlines()):
                lines.append(indent + ("fix: " if i == 0 else "     ") + line)
        failing = [c for c in self.checks if c.status != OK]
        if not failing:
            lines.append(f"All {len(self.checks)} checks passed.")
            return "\n".join(lines)
        counts = ", ".join(f"{n} {status}" for status in STATUSES[1:]
                           if (n := sum(c.status == status for c in failing)))
        lines.append(f"{len(failing)} of {len(self.checks)} checks need attention ({counts}).")
        return "\n".join(lines)


class _Checks:
    """Collects checks in order; `skip` records the ones that could not run, and why."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def add(self, name: str, status: str, summary: str, fix: str = "") -> None:
        self.items.append(Check(name, status, summary, fix if status != OK else ""))

    def skip(self, names: Iterable[str], reason: str) -> None:
        for name in names:
            self.add(name, UNCHECKED, f"not checked: {reason}",
                     "fix what it depends on, then run doctor again")


@dataclass(frozen=True)
class ReplicaContract:
    """What the replica must hold (the product DB contract, `defs/product_db/contract.py`)."""

    name: str
    tables: Sequence[str]
    problems: Callable[[dict[str, dict[str, str]]], list[str]]  # {table: {column: type}} -> problems


# ---------------------------------------------------------------------------------------------------------
# entry point

def check_prerequisites(
    *,
    create_platform_dataset: bool = False,
    contract_for: Callable[[PlatformSettings], ReplicaContract] | None = None,
    read_dotenv: bool = True,
) -> Report:
    """Check the deployment the environment configures (`RECSYS_ENV`, default local) and report every
    prerequisite. `contract_for(settings)` gives the product DB contract (a ValueError names a broken one);
    `create_platform_dataset` creates a missing platform dataset in the export's location."""
    if read_dotenv:
        from dotenv import load_dotenv

        load_dotenv(override=False)
    checks = _Checks()
    deployment = os.environ.get("RECSYS_ENV", "local")
    if deployment not in DEPLOYMENTS:
        checks.add("settings.deployment", FAILED, f"RECSYS_ENV={deployment!r} is not a deployment",
                   f"set RECSYS_ENV to one of {', '.join(DEPLOYMENTS)} (local is the embedded default)")
        return Report(deployment, checks.items)
    default = "" if "RECSYS_ENV" in os.environ else " (the default)"
    checks.add("settings.deployment", OK, f"RECSYS_ENV={deployment}{default}")
    settings, export_named = _settings(checks, deployment)
    contract = _contract(checks, settings, contract_for)
    if deployment == "local":
        _local_checks(checks, settings, contract)
    else:
        _aws_checks(checks, settings, contract, export_named, create_platform_dataset)
    return Report(deployment, checks.items)


def _settings(checks: _Checks, deployment: str) -> tuple[PlatformSettings, bool]:
    """Settings as `PlatformSettings.from_environment` reads them, every bad variable reported instead of
    the first: each is replaced by a stand-in value so the other checks still run (none depends on one,
    except the export dataset's name on the property id: the bool says whether it can be named)."""
    environ = dict(os.environ)
    zone = environ.get("RECSYS_GA4_TIMEZONE")
    problems: list[str] = []
    export_named = True
    for _ in range(4):  # each variable is replaced at most once
        try:
            settings = PlatformSettings.from_environment(environ, read_dotenv=False)
            break
        except SettingsError as error:
            message = str(error)
            if message.startswith("RECSYS_GA4_TIMEZONE"):
                checks.add("settings.timezone", FAILED if zone else MISSING,
                           message if zone else message.split(": set it")[0] + " (there is no default in "
                           "production: a wrong zone would put every event on the wrong day, silently)",
                           "set RECSYS_GA4_TIMEZONE to the GA4 property's reporting time zone (GA4 Admin > "
                           "Property details), e.g. Europe/Berlin")
                environ["RECSYS_GA4_TIMEZONE"] = "UTC"  # no check below depends on it
            elif message.startswith("RECSYS_GA4_PROPERTY_ID"):  # or RECSYS_GA4_PROPERTY_IDS
                problems.append(f"{message} (GA4 Admin > Property details; the export is analytics_<id>)")
                environ.pop("RECSYS_GA4_PROPERTY_IDS", None)
                environ["RECSYS_GA4_PROPERTY_ID"] = "0"
                export_named = False
            elif message.startswith("RECSYS_START_DATE"):
                problems.append(message)
                environ.pop("RECSYS_START_DATE", None)
            else:
                raise
    else:  # pragma: no cover
        raise RuntimeError("settings kept failing after every variable was replaced")
    if not any(c.name == "settings.timezone" for c in checks.items):
        note = "" if zone else " (the embedded default's; set RECSYS_GA4_TIMEZONE to your property's)"
        checks.add("settings.timezone", OK, f"RECSYS_GA4_TIMEZONE={settings.timezone}{note}")
    missing = []
    if deployment == "aws":
        missing = [f"{name}: {meaning}" for name, meaning in REQUIRED_AWS_VARIABLES.items()
                   if not os.environ.get(name)]
        problems.extend(_aws_variable_problems())
    if missing:
        checks.add("settings.variables", MISSING, "\n".join(["not set:", *missing, *problems]),
                   "set each in the environment or in .env (README, Configuration)"
                   + ("; and correct the others listed" if problems else ""))
    elif problems:
        checks.add("settings.variables", FAILED, "\n".join(problems), "correct each variable listed")
    elif deployment == "aws":
        checks.add("settings.variables", OK, f"all {len(REQUIRED_AWS_VARIABLES)} required variables are set")
    return settings, export_named


def _aws_variable_problems() -> list[str]:
    problems = []
    for old, new in UNREAD_AWS_VARIABLES.items():
        if os.environ.get(old):
            current = f" (set to {os.environ[new]!r})" if os.environ.get(new) else ""
            problems.append(f"{old} is set but nothing reads it: the platform reads {new}{current}")
    sse = os.environ.get("RECSYS_LAKE_SSE")
    if sse and sse not in ("AES256", "aws:kms"):
        problems.append(f"RECSYS_LAKE_SSE={sse!r}: must be AES256 (SSE-S3) or aws:kms (SSE-KMS), or unset")
    if os.environ.get("RECSYS_AWS_EXTERNAL_ID") and not os.environ.get("RECSYS_AWS_ROLE_ARN"):
        problems.append("RECSYS_AWS_EXTERNAL_ID is set without RECSYS_AWS_ROLE_ARN: only AssumeRole sends it")
    role = os.environ.get("RECSYS_PERSONALIZE_SERVICE_ROLE_ARN")
    if role and not _ROLE_ARN.match(role):
        problems.append(f"RECSYS_PERSONALIZE_SERVICE_ROLE_ARN={role!r} is not a role ARN "
                        "(arn:aws:iam::<account>:role/<name>)")
    return problems


def _contract(checks: _Checks, settings: PlatformSettings, contract_for) -> ReplicaContract | None:
    if contract_for is None:
        checks.add("settings.contract", UNCHECKED,
                   "no product DB contract was given to check the replica with",
                   "run the checks through `recsys-platform doctor`, which loads RECSYS_PRODUCT_DB_CONTRACT")
        return None
    try:
        contract = contract_for(settings)
    except (ValueError, OSError) as error:
        checks.add("settings.contract", FAILED,
                   f"product DB contract {settings.product_db_contract!r}: {error}",
                   "set RECSYS_PRODUCT_DB_CONTRACT to a shipped contract (simulator, datastream) or to a "
                   "YAML file copied from recsys_platform/defs/product_db/contracts/datastream.yaml")
        return None
    checks.add("settings.contract", OK,
               f"product DB contract {contract.name}: tables {', '.join(contract.tables)}")
    return contract


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


# ---------------------------------------------------------------------------------------------------------
# the embedded default

def _local_checks(checks: _Checks, settings: PlatformSettings, contract: ReplicaContract | None) -> None:
    from recsys_platform.lib.deployments import resources_for

    paths = settings.paths
    resources = resources_for(settings)
    home = paths.home
    if home.is_dir():
        probe = home / f".doctor-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.write_text("recsys-platform doctor")
            probe.unlink()
            checks.add("local.state_folder", OK, f"{home} is writable")
        except OSError as error:
            checks.add("local.state_folder", FAILED, f"cannot write in {home}: {error.strerror or error}",
                       f"make {home} writable for this user, or point RECSYS_HOME at a folder that is")
    else:
        checks.add("local.state_folder", MISSING, f"state folder {home} does not exist",
                   "`recsys-platform simulate` (or `make demo`) creates it with a simulated shop; or point "
                   "RECSYS_HOME at the existing one")
    files = {"local.export_db": (paths.ga4_export_db, "the GA4 export"),
             "local.product_db": (paths.product_db, "the product DB")}
    for name, (path, what) in files.items():
        if path.is_file():
            checks.add(name, OK, f"{what}: {path}")
        else:
            checks.add(name, MISSING, f"{what} file {path} does not exist",
                       "`recsys-platform simulate --days 28 --events-per-day 20000` writes it "
                       "(README, Command line)")
    warehouse = resources["warehouse"]
    if paths.product_db.is_file():
        _replica_contract(checks, "warehouse.replica_contract", warehouse, contract,
                          f"the product DB {paths.product_db}")
    else:
        checks.skip(["warehouse.replica_contract"], "the product DB file is missing")
    export_checks = dict(zip(settings.ga4_property_ids,
                             _check_names(["warehouse.export_tables"], settings.ga4_property_ids)))
    if paths.ga4_export_db.is_file():
        for property_id, name in export_checks.items():
            _export_tables(checks, name, warehouse, f"{paths.ga4_export_db} (analytics_{property_id})",
                           property_id=property_id)
    else:
        checks.skip(export_checks.values(), "the GA4 export file is missing")
    personalize = resources["personalize"]
    _personalize(checks, personalize.aws, personalize.endpoint_url, local=True)


# ---------------------------------------------------------------------------------------------------------
# production

BIGQUERY_CHECKS = ("bigquery.export_dataset", "bigquery.platform_dataset", "bigquery.replica_dataset",
                   "bigquery.replica_contract", "bigquery.export_tables")
# Checked once per GA4 property: `bigquery.export_dataset[<property id>]` when the deployment reads several.
PER_PROPERTY_CHECKS = ("bigquery.export_dataset", "bigquery.export_tables", "warehouse.export_tables")
LAKE_CHECKS = ("s3.bucket", "s3.write", "s3.bucket_policy")
ROLE_CHECKS = ("iam.service_role", "iam.service_role_trust", "iam.service_role_access", "iam.pass_role")


def _aws_checks(checks: _Checks, settings: PlatformSettings, contract, export_named: bool,
                create: bool) -> None:
    from recsys_platform.lib.deployments import resources_for

    resources = resources_for(settings)

    def unset(*names: str) -> str | None:
        absent = [n for n in names if not os.environ.get(n)]
        return f"{', '.join(absent)} not set" if absent else None

    gcp_identity = _gcp_credentials(checks)
    reason = unset("RECSYS_GCP_PROJECT", "RECSYS_BQ_DATASET", "RECSYS_BQ_PRODUCT_DATASET") or (
        None if gcp_identity else "GCP credentials are unusable")
    if reason:
        checks.skip(_check_names(BIGQUERY_CHECKS, settings.ga4_property_ids), reason)
    else:
        with resources["warehouse"].process_config_and_initialize_cm() as warehouse:
            _bigquery(checks, warehouse, contract, export_named, create, gcp_identity)

    reason = unset("AWS_REGION")
    if reason:
        checks.skip(["aws.credentials", "aws.role", *LAKE_CHECKS, *ROLE_CHECKS, "personalize.reachable"],
                    reason)
        return
    with ExitStack() as stack:
        # The lake and Personalize share one AWS session (deployments.py); the lake's resolved copy serves
        # every AWS check, so the configured role is assumed once.
        lake, lake_reason = None, unset("RECSYS_LAKE_BUCKET")
        if not lake_reason:
            try:
                lake = stack.enter_context(resources["lake"].process_config_and_initialize_cm())
            except Exception as error:  # e.g. RECSYS_LAKE_SSE out of range: reported under settings
                lake_reason = f"the lake resource does not start: {_first_line(error)}"
        personalize = None
        if not unset("RECSYS_PERSONALIZE_SERVICE_ROLE_ARN"):
            personalize = stack.enter_context(resources["personalize"].process_config_and_initialize_cm())
        if lake is not None:
            aws = lake.aws
        elif personalize is not None:
            aws = personalize.aws
        else:
            aws = stack.enter_context(resources["personalize"].aws.process_config_and_initialize_cm())
        identity = _aws_identity(checks, aws)
        unusable = None if identity else "AWS credentials are unusable"
        if lake is None or unusable:
            checks.skip(LAKE_CHECKS, lake_reason or unusable)
        else:
            _bucket(checks, lake, aws)
        if personalize is None or unusable:
            checks.skip(ROLE_CHECKS, unset("RECSYS_PERSONALIZE_SERVICE_ROLE_ARN") or unusable)
        else:
            _service_role(checks, aws, personalize.service_role_arn, identity, lake)
        if unusable:
            checks.skip(["personalize.reachable"], unusable)
        else:
            # No endpoint, as deployments.aws_resources: boto3 reads AWS_ENDPOINT_URL_PERSONALIZE itself.
            _personalize(checks, aws, None, local=False)


# --- BigQuery ----------------------------------------------------------------------------------------------

def _gcp_credentials(checks: _Checks) -> str | None:
    """The identity google.auth.default() finds (what dagster-gcp's BigQueryResource uses without
    gcp_credentials, as deployments.py configures it), proven by fetching a token: no permission needed."""
    import google.auth
    import google.auth.exceptions
    import google.auth.transport.requests

    try:
        credentials, _ = google.auth.default(scopes=[BIGQUERY_SCOPE])
    except google.auth.exceptions.DefaultCredentialsError as error:
        checks.add("gcp.credentials", MISSING, f"no Google credentials: {_first_line(error)}",
                   "set GOOGLE_APPLICATION_CREDENTIALS to the platform's service-account key file (or run "
                   "`gcloud auth application-default login` on a workstation)")
        return None
    identity = getattr(credentials, "service_account_email", None) or type(credentials).__name__
    try:
        credentials.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.GoogleAuthError as error:
        checks.add("gcp.credentials", FAILED,
                   f"the credentials of {identity} were refused: {_first_line(error)}",
                   "the key may be deleted or disabled, or the clock skewed: create a new key for the "
                   "service account (IAM > Service accounts > Keys) and point "
                   "GOOGLE_APPLICATION_CREDENTIALS at it")
        return None
    checks.add("gcp.credentials", OK, f"authenticated as {identity}")
    return identity


def _bigquery(checks: _Checks, warehouse, contract, export_named: bool, create: bool, identity: str) -> None:
    several = warehouse.several_properties
    with warehouse.bigquery.get_client() as client:
        project = warehouse.bigquery.project or client.project
        export_project = warehouse.export_project or project
        # Every property's export must be where the first one is: one BigQuery job reads one location.
        export_locations: dict[str, str | None] = {}
        first: tuple[str, str] | None = None
        for property_id in warehouse.property_ids if export_named else ():
            export_id = f"{export_project}.analytics_{property_id}"
            location = _export_dataset(checks, _per_property("bigquery.export_dataset", property_id, several),
                                       client, export_id, warehouse.location, identity, first)
            export_locations[property_id] = location
            if first is None and location is not None:
                first = (export_id, location)
        if not export_named:
            checks.skip(["bigquery.export_dataset"], "RECSYS_GA4_PROPERTY_ID is not a property id")
        export_location = first[1] if first else None
        _platform_dataset(checks, client, f"{project}.{warehouse.platform_dataset}", export_location, create,
                          identity)
        replica_id = f"{project}.{warehouse.product_dataset}"
        replica_found = _replica_dataset(checks, client, replica_id, export_location, identity)
    if replica_found:
        _replica_contract(checks, "bigquery.replica_contract", warehouse, contract,
                          f"the replica dataset {replica_id}")
    else:
        checks.skip(["bigquery.replica_contract"], "the replica dataset is not readable")
    if not export_named:
        checks.skip(["bigquery.export_tables"], "the GA4 export dataset is not readable")
    for property_id, location in export_locations.items():
        name = _per_property("bigquery.export_tables", property_id, several)
        if location is not None:
            _export_tables(checks, name, warehouse, f"{export_project}.analytics_{property_id}", project=project,
                           property_id=property_id)
        else:
            checks.skip([name], "the GA4 export dataset did not pass its check")


def _per_property(name: str, property_id: str, several: bool) -> str:
    """A per-property check's name: qualified by the property when the deployment reads several."""
    return f"{name}[{property_id}]" if several else name


def _check_names(names: Iterable[str], property_ids: Sequence[str]) -> list[str]:
    """`names`, each per-property check once per GA4 property."""
    several = len(property_ids) > 1
    return [checked for name in names for checked in (
        [_per_property(name, p, several) for p in property_ids] if name in PER_PROPERTY_CHECKS else [name])]


def _get_dataset(client, dataset_id: str):
    """(dataset, None), or (None, the error: NotFound, Forbidden, ...)."""
    from google.api_core import exceptions

    try:
        return client.get_dataset(dataset_id), None
    except exceptions.GoogleAPIError as error:
        return None, error


def _is(error, *kinds: str) -> bool:
    from google.api_core import exceptions

    return any(isinstance(error, getattr(exceptions, kind)) for kind in kinds)


def _same_location(a: str | None, b: str | None) -> bool:
    return (a or "").lower() == (b or "").lower()  # BigQuery spells them either way (US, us, EU, eu)


def _export_dataset(checks: _Checks, name: str, client, export_id: str, configured: str | None,
                    identity: str, first: tuple[str, str] | None = None) -> str | None:
    """The export dataset's location (None when it cannot be read); `first`: (dataset, location) of the first
    property's export already found, which every other property's must share."""
    dataset, error = _get_dataset(client, export_id)
    if error is not None:
        if _is(error, "NotFound"):
            checks.add(name, MISSING, f"GA4 export dataset {export_id} does not exist",
                       f"link the GA4 property to BigQuery project {export_id.split('.')[0]} (GA4 Admin > "
                       "Product links > BigQuery links, Daily export on); if the export is in another "
                       "project set RECSYS_GA4_EXPORT_PROJECT, and check RECSYS_GA4_PROPERTY_ID")
        elif _is(error, "Forbidden"):
            checks.add(name, FAILED, f"{identity} may not read {export_id}: {_first_line(error)}",
                       f"grant {identity} roles/bigquery.dataViewer on dataset {export_id}")
        else:
            checks.add(name, FAILED, f"reading {export_id} failed: {_first_line(error)}",
                       "check that BigQuery answers (proxy, BIGQUERY_EMULATOR_HOST), then run doctor again")
        return None
    location = dataset.location
    if first is not None and not _same_location(first[1], location):
        checks.add(name, FAILED, f"{export_id} is in {location}, {first[0]} in {first[1]}: a BigQuery job reads "
                   "one location only, so one merge cannot read both",
                   "a dataset's location cannot change: link the property to BigQuery again with the other "
                   f"exports' location ({first[1]}), or run a separate deployment for it")
        return None
    if configured and not _same_location(configured, location):
        checks.add(name, FAILED, f"{export_id} is in {location}, but RECSYS_BQ_LOCATION={configured}: "
                   f"jobs run in {configured} cannot read it",
                   f"set RECSYS_BQ_LOCATION={location}, or unset it (BigQuery then runs each job where its "
                   "data is)")
        return location
    checks.add(name, OK, f"{export_id} in {location}")
    return location


def _platform_dataset(checks: _Checks, client, platform_id: str, export_location: str | None, create: bool,
                      identity: str) -> None:
    name = "bigquery.platform_dataset"
    dataset, error = _get_dataset(client, platform_id)
    if error is not None and _is(error, "NotFound"):
        if export_location is None:
            checks.add(name, MISSING, f"platform dataset {platform_id} does not exist, and the export's "
                       "location is unknown", "fix the GA4 export dataset first; then `recsys-platform "
                       "doctor --create` creates this one in the export's location")
        elif create:
            _create_platform_dataset(checks, client, platform_id, export_location, identity)
        else:
            checks.add(name, MISSING, f"platform dataset {platform_id} does not exist",
                       f"`recsys-platform doctor --create` creates it in {export_location} (the export's "
                       f"location), or: bq mk --location={export_location} --dataset "
                       f"{platform_id.replace('.', ':', 1)}")
        return
    if error is not None:
        found = (f"{identity} may not read {platform_id}" if _is(error, "Forbidden")
                 else f"reading {platform_id} failed")
        checks.add(name, FAILED, f"{found}: {_first_line(error)}",
                   f"grant {identity} roles/bigquery.dataEditor on dataset {platform_id}")
        return
    if export_location is not None and not _same_location(dataset.location, export_location):
        checks.add(name, FAILED, f"{platform_id} is in {dataset.location}, the GA4 export in "
                   f"{export_location}: a BigQuery job reads and writes one location only, so the merge "
                   "cannot run",
                   f"a dataset's location cannot change: create the platform dataset in {export_location} "
                   "under another name (point RECSYS_BQ_DATASET at the new name, then `recsys-platform "
                   f"doctor --create`) and delete {platform_id} once nothing needs it")
        return
    checks.add(name, OK, f"{platform_id} in {dataset.location}")


def _create_platform_dataset(checks: _Checks, client, platform_id: str, location: str, identity: str) -> None:
    from google.api_core import exceptions
    from google.cloud import bigquery

    dataset = bigquery.Dataset(platform_id)
    dataset.location = location  # explicitly: a client or project default may be another location
    dataset.description = "recsys_platform: merged GA4 events, refined tables, interactions"
    try:
        created = client.create_dataset(dataset)
    except exceptions.GoogleAPIError as error:
        fix = (f"grant {identity} roles/bigquery.user on project {platform_id.split('.')[0]} "
               f"(bigquery.datasets.create), or have an admin create it in {location}"
               if _is(error, "Forbidden") else f"create it by hand in {location}")
        checks.add("bigquery.platform_dataset", FAILED,
                   f"creating {platform_id} in {location} failed: {_first_line(error)}", fix)
        return
    checks.add("bigquery.platform_dataset", OK, f"{platform_id} created in {created.location} (the export's "
               "location)")


def _replica_dataset(checks: _Checks, client, replica_id: str, export_location: str | None,
                     identity: str) -> bool:
    name = "bigquery.replica_dataset"
    dataset, error = _get_dataset(client, replica_id)
    if error is not None:
        if _is(error, "NotFound"):
            checks.add(name, MISSING, f"product DB replica dataset {replica_id} does not exist",
                       "set RECSYS_BQ_PRODUCT_DATASET to the dataset your Datastream stream writes to "
                       "(Datastream > stream > destination), in project RECSYS_GCP_PROJECT")
        else:
            checks.add(name, FAILED, f"{identity} may not read {replica_id}: {_first_line(error)}",
                       f"grant {identity} roles/bigquery.dataViewer on dataset {replica_id}")
        return False
    if export_location is not None and not _same_location(dataset.location, export_location):
        checks.add(name, FAILED, f"{replica_id} is in {dataset.location}, the GA4 export in "
                   f"{export_location}: the interactions query joins both, and a BigQuery job reads one "
                   "location only",
                   f"replicate the product DB into a dataset in {export_location} (a Datastream "
                   "destination's location is chosen when the stream is made) and point "
                   "RECSYS_BQ_PRODUCT_DATASET at it")
        return True
    checks.add(name, OK, f"{replica_id} in {dataset.location}")
    return True


def _replica_contract(checks: _Checks, name: str, warehouse, contract: ReplicaContract | None,
                      where: str) -> None:
    if contract is None:
        checks.skip([name], "no product DB contract to check the replica with")
        return
    try:
        columns = warehouse.replica_columns(list(contract.tables))  # `Warehouse.replica_columns`
    except Exception as error:  # the engine's own error names the table and the refusal
        checks.add(name, FAILED, f"reading the replica's tables failed: {_first_line(error)}",
                   "let the platform's identity read the replica (roles/bigquery.dataViewer on its dataset)")
        return
    problems = contract.problems(columns)
    if problems:
        checks.add(name, FAILED, "\n".join([f"{where} breaks contract {contract.name}:", *problems]),
                   "fix the replica, or map its names and types in a contract of your own (copy "
                   "recsys_platform/defs/product_db/contracts/datastream.yaml) and set "
                   "RECSYS_PRODUCT_DB_CONTRACT to it")
        return
    checks.add(name, OK, f"{where} matches contract {contract.name} ({len(columns)} tables)")


def _export_tables(checks: _Checks, name: str, warehouse, where: str, project: str | None = None,
                   property_id: str | None = None) -> None:
    from recsys_platform.lib.warehouse.export_tables import DAILY

    try:
        listing = warehouse.list_export_tables(property_id)  # the sensor's own query
    except Exception as error:
        forbidden = "403" in str(error) or "denied" in str(error).lower()
        fix = (f"grant the platform's identity roles/bigquery.jobUser on project {project} "
               "(bigquery.jobs.create: the sensor lists the export with one query)" if forbidden and project
               else "check that the export can be read (the lines above), then run doctor again")
        checks.add(name, FAILED, f"listing the export's tables failed: {_first_line(error)}", fix)
        return
    daily = sorted((t for t in listing.tables if t.kind == DAILY), key=lambda t: t.day)
    others = sorted({t.table_id for t in listing.tables if t.kind != DAILY})
    unrecognised = (["unrecognised events_* tables (not a valid day; the platform ignores them): "
                     + ", ".join(listing.unrecognised)] if listing.unrecognised else [])
    if not daily:
        found = f" (only {', '.join(others[:5])})" if others else ""
        checks.add(name, MISSING,
                   "\n".join([f"no daily events_YYYYMMDD table in {where}{found}", *unrecognised]),
                   "GA4 writes the first daily table the day after the BigQuery link is made with the Daily "
                   "export on (GA4 Admin > BigQuery links); a standard property over 1M events a day gets "
                   "intraday tables only")
        return
    newest = daily[-1]
    checks.add(name, OK, "\n".join([
        f"{len(daily)} daily tables in {where}, {daily[0].day} .. {newest.day}; newest day {newest.day} "
        f"({newest.table_id}, {newest.row_count} rows)", *unrecognised]))


# --- AWS ---------------------------------------------------------------------------------------------------

def _fast_config():
    """Two attempts and short timeouts: doctor reports an unreachable endpoint in seconds, where the
    platform's clients (adaptive mode, ten attempts) keep retrying for minutes."""
    from botocore.config import Config

    return Config(retries={"total_max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30)


def _client(aws, service: str, endpoint_url: str | None = None):
    return aws.session().client(service, endpoint_url=endpoint_url, config=_fast_config())


def _aws_error(error: BaseException) -> tuple[str, str]:
    """(code, message) of a botocore error; code '' for errors without one (connection, credentials)."""
    response = getattr(error, "response", None) or {}
    info = response.get("Error", {})
    code = str(info.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")
    return code, info.get("Message") or _first_line(error)


_DENIED = ("AccessDenied", "AccessDeniedException", "403", "Forbidden", "UnauthorizedOperation")


@dataclass(frozen=True)
class _Identity:
    arn: str  # what sts:GetCallerIdentity says (an assumed-role session ARN when a role is assumed)
    account: str


def _aws_identity(checks: _Checks, aws) -> _Identity | None:
    """The platform's AWS identity: the credentials' own (aws.credentials), then the configured role's
    (aws.role), each proven by sts:GetCallerIdentity, which needs no permission."""
    from recsys_platform.lib.aws_session import AwsSession

    base = AwsSession(region_name=aws.region_name, profile_name=aws.profile_name,
                      aws_access_key_id=aws.aws_access_key_id,
                      aws_secret_access_key=aws.aws_secret_access_key,
                      aws_session_token=aws.aws_session_token)
    try:
        caller = _client(base, "sts").get_caller_identity()
    except Exception as error:
        status = MISSING if type(error).__name__ == "NoCredentialsError" else FAILED
        checks.add("aws.credentials", status, f"sts:GetCallerIdentity failed: {_aws_error(error)[1]}",
                   "give the platform AWS credentials: an instance or task role, AWS_PROFILE, or "
                   "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (an expired session needs new ones)")
        checks.skip(["aws.role"], "AWS credentials are unusable")
        return None
    checks.add("aws.credentials", OK, f"{caller['Arn']} (account {caller['Account']})")
    if not aws.role_arn:
        checks.add("aws.role", OK, f"no RECSYS_AWS_ROLE_ARN: the platform calls S3 and Personalize as "
                   f"{caller['Arn']}")
        return _Identity(caller["Arn"], caller["Account"])
    try:
        assumed = _client(aws, "sts").get_caller_identity()  # the session assumes the role first
    except Exception as error:
        external = f" with the condition sts:ExternalId = {aws.external_id!r}" if aws.external_id else ""
        checks.add("aws.role", FAILED,
                   f"{caller['Arn']} cannot assume {aws.role_arn}: {_aws_error(error)[1]}",
                   f"the role's trust policy must allow {caller['Arn']} (or its account) sts:AssumeRole"
                   f"{external}, and {caller['Arn']} needs sts:AssumeRole on {aws.role_arn}")
        return None
    checks.add("aws.role", OK, f"assumed {aws.role_arn}: {assumed['Arn']}")
    return _Identity(assumed["Arn"], assumed["Account"])


def _bucket(checks: _Checks, lake, aws) -> None:
    s3 = _client(aws, "s3")
    bucket, objects = lake.bucket, f"arn:aws:s3:::{lake.bucket}/{_join_prefix(lake.prefix)}*"
    try:
        head = s3.head_bucket(Bucket=bucket)
    except Exception as error:
        code, message = _aws_error(error)
        if code in ("404", "NoSuchBucket", "NotFound"):
            checks.add("s3.bucket", MISSING, f"bucket {bucket} does not exist",
                       f"create it in {aws.region_name} (aws s3api create-bucket --bucket {bucket} "
                       f"--create-bucket-configuration LocationConstraint={aws.region_name}), or correct "
                       "RECSYS_LAKE_BUCKET")
        elif code in _DENIED:
            # S3 answers 403, not 404, to a caller that may not list the bucket: say which permission.
            checks.add("s3.bucket", FAILED, f"HEAD bucket {bucket} was refused (403): the platform's "
                       "identity may not list it, or the bucket belongs to an account that does not grant it",
                       f"grant s3:ListBucket on arn:aws:s3:::{bucket} (S3 answers 403 instead of 404 without "
                       f"it), and s3:GetObject/s3:PutObject on {objects}")
        else:
            checks.add("s3.bucket", FAILED, f"bucket {bucket} is unreachable: {message}",
                       "check AWS_REGION, AWS_ENDPOINT_URL_S3 and the network path to S3")
        checks.skip(["s3.write", "s3.bucket_policy"], f"bucket {bucket} is not reachable")
        return
    region = head.get("BucketRegion") or head.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(
        "x-amz-bucket-region")
    where = f", in {region}" if region else ""
    if region and region != aws.region_name:
        where += f" (AWS_REGION is {aws.region_name})"
    checks.add("s3.bucket", OK, f"{bucket} reachable{where}")
    _probe(checks, lake, s3, objects)
    _bucket_policy(checks, s3, bucket, lake.prefix)


def _probe(checks: _Checks, lake, s3, objects: str) -> None:
    """A small object written through the lake's own write path (its server-side encryption arguments),
    then deleted. Deleting needs s3:DeleteObject, which the platform never uses: a refusal leaves the probe
    and says so, without failing the check."""
    key = f"{PROBE_FOLDER}/probe-{uuid.uuid4().hex[:12]}.txt"
    sse = lake.server_side_encryption or "none"
    try:
        uri = lake.replace_text(key, "written by recsys-platform doctor; safe to delete\n")
    except Exception as error:
        kms = " and kms:GenerateDataKey on the KMS key" if lake.server_side_encryption == "aws:kms" else ""
        checks.add("s3.write", FAILED,
                   f"writing a probe to {lake.uri(key)} (encryption {sse}) failed: {_aws_error(error)[1]}",
                   f"grant s3:PutObject on {objects}{kms}; a bucket policy that requires an encryption must "
                   "match RECSYS_LAKE_SSE / RECSYS_LAKE_KMS_KEY_ID")
        return
    left = ""
    try:
        s3.delete_object(Bucket=lake.bucket, Key=uri.split("/", 3)[3])
    except Exception as error:
        left = f"; the probe stays at {uri} ({_aws_error(error)[1]}): delete it by hand"
    checks.add("s3.write", OK, f"wrote and deleted a probe object (encryption {sse}){left}")


def _join_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _lake_needs(bucket: str, prefix: str) -> dict[str, str]:
    """Each action Personalize takes on the lake -> a resource it takes it on."""
    objects = f"arn:aws:s3:::{bucket}/{_join_prefix(prefix)}{_SAMPLE_OBJECT}"
    return {"s3:ListBucket": f"arn:aws:s3:::{bucket}", "s3:GetObject": objects, "s3:PutObject": objects}


def _s3_policy(bucket: str, principal: bool) -> str:
    return json.dumps(s3_policy_document(bucket, principal))


def s3_policy_document(bucket: str, principal: bool) -> dict:
    """What Personalize needs on the lake: as a bucket policy statement (`principal`) or as the service
    role's own policy."""
    statement = {"Effect": "Allow", "Action": list(PERSONALIZE_BUCKET_ACTIONS),
                 "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}
    if principal:
        statement = {"Sid": "PersonalizeS3BucketAccessPolicy", "Effect": "Allow",
                     "Principal": {"Service": PERSONALIZE_PRINCIPAL}, **statement}
    return {"Version": "2012-10-17", "Statement": [statement]}


def trust_policy_document() -> dict:
    """The service role's trust policy: Personalize may assume it."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": PERSONALIZE_PRINCIPAL}, "Action": "sts:AssumeRole"}]}


def pass_role_policy_document(role_arn: str) -> dict:
    """The platform's identity may hand the service role to Personalize (and to nothing else)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "iam:PassRole", "Resource": role_arn,
        "Condition": {"StringEquals": {"iam:PassedToService": PERSONALIZE_PRINCIPAL}}}]}


def platform_policy_document(bucket: str, prefix: str, role_arn: str) -> dict:
    """The platform's own identity: the lake under its prefix (the lake writes, reads and lists; multipart
    uploads of large snapshots may be aborted; doctor deletes its write probe), Personalize (every
    resource it creates is named by the platform, so no narrower resource can be listed up front), and
    handing the service role to Personalize."""
    objects = f"arn:aws:s3:::{bucket}/{_join_prefix(prefix)}*"
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "LakeObjects", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
         "Resource": objects},
        {"Sid": "LakeListing", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"},
        {"Sid": "Personalize", "Effect": "Allow", "Action": "personalize:*", "Resource": "*"},
        *pass_role_policy_document(role_arn)["Statement"],
    ]}


def deployment_policies(bucket: str, prefix: str, role_arn: str) -> dict[str, dict]:
    """Every policy document the deployment needs, for `recsys-platform doctor --policies`."""
    return {
        f"bucket policy of {bucket}": s3_policy_document(bucket, principal=True),
        f"trust policy of {role_arn}": trust_policy_document(),
        f"permissions policy of {role_arn}": s3_policy_document(bucket, principal=False),
        "policy of the platform's identity (RECSYS_AWS_ROLE_ARN's role, or its user)":
            platform_policy_document(bucket, prefix, role_arn),
    }


def _not_evaluated(keys: set[str]) -> str:
    return f" (conditions not evaluated: {', '.join(sorted(keys))})" if keys else ""


def _bucket_policy(checks: _Checks, s3, bucket: str, prefix: str) -> None:
    name = "s3.bucket_policy"
    fix = (f"add this statement to the bucket policy of {bucket} (Personalize developer guide, \"Giving "
           f"Amazon Personalize access to Amazon S3 resources\"):\n{_s3_policy(bucket, principal=True)}")
    try:
        document = _policy_document(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except Exception as error:
        code, message = _aws_error(error)
        if code == "NoSuchBucketPolicy":
            checks.add(name, MISSING, f"bucket {bucket} has no bucket policy: Personalize may not read it",
                       fix)
        elif code in _DENIED:
            checks.add(name, UNCHECKED, f"cannot read the bucket policy of {bucket} ({code}: the platform's "
                       "identity lacks s3:GetBucketPolicy)",
                       f"check by hand that it lets {PERSONALIZE_PRINCIPAL} "
                       f"{', '.join(PERSONALIZE_BUCKET_ACTIONS)} on arn:aws:s3:::{bucket} and "
                       f"arn:aws:s3:::{bucket}/*, or grant s3:GetBucketPolicy so doctor can")
        else:
            checks.add(name, FAILED, f"reading the bucket policy of {bucket} failed: {message}", fix)
        return
    missing, notes = [], set()
    for action, resource in _lake_needs(bucket, prefix).items():
        decision, unevaluated = evaluate(document, action, resource, {},
                                         service_principal=PERSONALIZE_PRINCIPAL)
        notes |= unevaluated
        if decision != ALLOWED:
            denied = " (explicitly denied)" if decision == DENIED else ""
            missing.append(f"{action} on {resource.replace(_SAMPLE_OBJECT, '*')}{denied}")
    if missing:
        checks.add(name, FAILED, "\n".join([f"the bucket policy of {bucket} does not let "
                                            f"{PERSONALIZE_PRINCIPAL}:", *missing]), fix)
        return
    checks.add(name, OK, f"lets {PERSONALIZE_PRINCIPAL} {', '.join(PERSONALIZE_BUCKET_ACTIONS)}"
               + _not_evaluated(notes))


# --- the Personalize service role ------------------------------------------------------------------------

def _trust_policy_text() -> str:
    return json.dumps(trust_policy_document())


def _service_role(checks: _Checks, aws, role_arn: str, identity: _Identity, lake) -> None:
    match = _ROLE_ARN.match(role_arn or "")
    if not match:
        checks.skip(ROLE_CHECKS, "RECSYS_PERSONALIZE_SERVICE_ROLE_ARN is not a role ARN")
        return
    _, account, _, role_name = match.groups()
    iam = _client(aws, "iam")
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except Exception as error:
        code, message = _aws_error(error)
        if code == "NoSuchEntity":
            checks.add("iam.service_role", MISSING, f"role {role_name} does not exist in account "
                       f"{identity.account}", "create it (IAM > Roles > Create role > AWS service > "
                       "Personalize) with this trust policy, or correct "
                       f"RECSYS_PERSONALIZE_SERVICE_ROLE_ARN:\n"
                       f"{_trust_policy_text()}")
        elif code in _DENIED:
            checks.add("iam.service_role", UNCHECKED,
                       f"{identity.arn} may not read role {role_name} ({code})",
                       f"grant iam:GetRole on {role_arn} so doctor can check it, or check by hand that it "
                       f"exists and trusts {PERSONALIZE_PRINCIPAL}")
        else:
            checks.add("iam.service_role", FAILED, f"reading role {role_name} failed: {message}",
                       "check AWS_ENDPOINT_URL_IAM and the network path to IAM")
        checks.skip(["iam.service_role_trust", "iam.service_role_access"],
                    "the service role could not be read")
        _pass_role(checks, iam, identity, role_arn)
        return
    if role["Arn"] != role_arn:
        checks.add("iam.service_role", FAILED, f"role {role_name} is {role['Arn']}, not {role_arn}",
                   f"set RECSYS_PERSONALIZE_SERVICE_ROLE_ARN={role['Arn']}")
    elif account != identity.account:
        checks.add("iam.service_role", FAILED, f"{role_arn} is in account {account}, the platform's identity "
                   f"in {identity.account}: Personalize only takes a role of the account it runs in",
                   f"create the service role in account {identity.account}, or set RECSYS_AWS_ROLE_ARN to a "
                   f"role of account {account}")
    else:
        checks.add("iam.service_role", OK, f"{role_arn} exists")
    trust = _policy_document(role.get("AssumeRolePolicyDocument") or {})
    decision, unevaluated = evaluate(trust, "sts:AssumeRole", role_arn, {},
                                     service_principal=PERSONALIZE_PRINCIPAL)
    if decision == ALLOWED:
        checks.add("iam.service_role_trust", OK,
                   f"trusts {PERSONALIZE_PRINCIPAL}" + _not_evaluated(unevaluated))
    else:
        denied = " (explicitly denied)" if decision == DENIED else ""
        checks.add("iam.service_role_trust", FAILED, f"the trust policy of {role_name} does not let "
                   f"{PERSONALIZE_PRINCIPAL} assume it{denied}",
                   f"replace its trust policy (IAM > Roles > {role_name} > Trust relationships) with\n"
                   f"{_trust_policy_text()}")
    _service_role_access(checks, iam, role_name, lake)
    _pass_role(checks, iam, identity, role_arn)


def _service_role_access(checks: _Checks, iam, role_name: str, lake) -> None:
    """Personalize needs both: the bucket policy lets the service in, the role's own policies let it act."""
    name = "iam.service_role_access"
    if lake is None:
        checks.skip([name], "the lake is not configured")
        return
    try:
        documents = _role_policies(iam, role_name)
    except Exception as error:
        checks.add(name, UNCHECKED, f"cannot read the policies of {role_name}: {_aws_error(error)[1]}",
                   "grant iam:ListAttachedRolePolicies, iam:GetPolicy, iam:GetPolicyVersion, "
                   "iam:ListRolePolicies and iam:GetRolePolicy so doctor can check them, or check by hand")
        return
    missing, notes = [], set()
    for action, resource in _lake_needs(lake.bucket, lake.prefix).items():
        decision, unevaluated = evaluate_all(documents, action, resource, {})
        notes |= unevaluated
        if decision != ALLOWED:
            missing.append(f"{action} on {resource.replace(_SAMPLE_OBJECT, '*')}")
    if missing:
        checks.add(name, FAILED, "\n".join([f"the policies of {role_name} do not allow:", *missing]),
                   f"attach this policy to {role_name}:\n{_s3_policy(lake.bucket, principal=False)}")
        return
    checks.add(name, OK, f"{role_name} may list, read and write "
               f"s3://{lake.bucket}/{_join_prefix(lake.prefix)}" + _not_evaluated(notes))


def _pass_role(checks: _Checks, iam, identity: _Identity, role_arn: str) -> None:
    """May the platform's identity pass the service role to Personalize? IAM's own simulator answers when it
    can be called; where it cannot (not permitted, or an IAM without one, like moto's) the identity's
    policies are read and evaluated here, which does not see permission boundaries, SCPs or session
    policies. The line says which way it was decided."""
    name = "iam.pass_role"
    try:
        kind, principal_name, principal_arn = _principal(iam, identity)
    except Exception as error:
        checks.add(name, UNCHECKED, f"cannot tell which IAM role {identity.arn} is: {_aws_error(error)[1]}",
                   "grant iam:GetRole on the platform's role so doctor can check, or check iam:PassRole "
                   "by hand")
        return
    if kind == "root":
        checks.add(name, OK,
                   f"{identity.arn} is the account root, which may pass any role (use a role instead)")
        return
    if kind is None:
        checks.add(name, UNCHECKED,
                   f"{identity.arn} is neither an IAM user nor a role: doctor cannot read its policies",
                   f"check by hand that it may iam:PassRole {role_arn} to {PERSONALIZE_PRINCIPAL}")
        return
    try:
        result = iam.simulate_principal_policy(
            PolicySourceArn=principal_arn, ActionNames=["iam:PassRole"], ResourceArns=[role_arn],
            ContextEntries=[{"ContextKeyName": "iam:PassedToService",
                             "ContextKeyValues": [PERSONALIZE_PRINCIPAL], "ContextKeyType": "string"}],
        )["EvaluationResults"][0]
        decision = {"allowed": ALLOWED, "explicitDeny": DENIED}.get(result["EvalDecision"], IMPLICIT)
        method, unevaluated = "iam:SimulatePrincipalPolicy", set(result.get("MissingContextValues") or ())
    except Exception as error:
        code, message = _aws_error(error)
        # moto has no simulator: its HTTP 500 page is not an IAM answer botocore can parse.
        why = ("not implemented by this IAM endpoint" if type(error).__name__ == "ResponseParserError"
               else f"unavailable ({code or 'error'}: {message[:120]})")
        try:
            documents = (_role_policies(iam, principal_name) if kind == "role"
                         else _user_policies(iam, principal_name))
        except Exception as read_error:
            checks.add(name, UNCHECKED, f"iam:SimulatePrincipalPolicy is {why}, and the policies of "
                       f"{principal_arn} cannot be read ({_aws_error(read_error)[1]})",
                       f"grant iam:SimulatePrincipalPolicy on {principal_arn} so doctor can check, or check "
                       f"by hand that it may iam:PassRole {role_arn}")
            return
        decision, unevaluated = evaluate_all(documents, "iam:PassRole", role_arn,
                                             {"iam:passedtoservice": PERSONALIZE_PRINCIPAL})
        policies = f"{len(documents)} {'policy' if len(documents) == 1 else 'policies'}"
        method = (f"read from the {policies} of {principal_arn}, as "
                  f"iam:SimulatePrincipalPolicy is {why} (permission boundaries, SCPs and session policies "
                  "are not seen this way)")
    if decision == ALLOWED:
        checks.add(name, OK, f"{principal_arn} may pass {role_arn} to {PERSONALIZE_PRINCIPAL}; {method}"
                   + _not_evaluated(unevaluated))
        return
    denied = " (explicitly denied)" if decision == DENIED else ""
    checks.add(name, FAILED, f"{principal_arn} may not iam:PassRole {role_arn}{denied}; {method}",
               f"attach to {principal_arn} a policy allowing iam:PassRole on {role_arn}, e.g.\n"
               + json.dumps(pass_role_policy_document(role_arn)))


def _principal(iam, identity: _Identity) -> tuple[str | None, str, str]:
    """('role' | 'user' | 'root' | None, name, IAM ARN) of the identity sts:GetCallerIdentity named."""
    arn = identity.arn
    if re.match(r"^arn:aws[a-z-]*:iam::\d{12}:root$", arn):
        return "root", "root", arn
    assumed = re.match(r"^arn:aws[a-z-]*:sts::\d{12}:assumed-role/([^/]+)/", arn)
    if assumed:
        # The session ARN has no path; the role's own ARN (which the simulator needs) may have one.
        return "role", assumed.group(1), iam.get_role(RoleName=assumed.group(1))["Role"]["Arn"]
    user = re.match(r"^arn:aws[a-z-]*:iam::\d{12}:user/(?:.*/)?([^/]+)$", arn)
    if user:
        return "user", user.group(1), arn
    return None, arn, arn


def _policy_document(document) -> dict:
    """A policy as a dict: boto3 decodes IAM's URL-encoded JSON itself, S3 returns a JSON string."""
    if isinstance(document, Mapping):
        return dict(document)
    text = str(document).strip()
    if text[:3].upper() == "%7B":
        text = urllib.parse.unquote(text)
    return json.loads(text)


def _paginate(iam, operation: str, key: str, **params) -> list:
    return [item for page in iam.get_paginator(operation).paginate(**params) for item in page.get(key, [])]


def _managed_documents(iam, attached: list[dict]) -> list[dict]:
    documents = []
    for policy in attached:
        version = iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
        answer = iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=version)
        documents.append(_policy_document(answer["PolicyVersion"]["Document"]))
    return documents


def _principal_policies(iam, kind: str, name: str) -> list[dict]:
    """The managed and inline policy documents of an IAM `kind` ("Role", "User" or "Group") named `name`."""
    lower, key = kind.lower(), {f"{kind}Name": name}
    documents = _managed_documents(iam, _paginate(iam, f"list_attached_{lower}_policies", "AttachedPolicies", **key))
    for policy in _paginate(iam, f"list_{lower}_policies", "PolicyNames", **key):
        inline = getattr(iam, f"get_{lower}_policy")(PolicyName=policy, **key)
        documents.append(_policy_document(inline["PolicyDocument"]))
    return documents


def _role_policies(iam, role_name: str) -> list[dict]:
    return _principal_policies(iam, "Role", role_name)


def _user_policies(iam, user_name: str) -> list[dict]:
    """The user's own policies and those of its groups."""
    documents = _principal_policies(iam, "User", user_name)
    for group in _paginate(iam, "list_groups_for_user", "Groups", UserName=user_name):
        documents.extend(_principal_policies(iam, "Group", group["GroupName"]))
    return documents


# --- Personalize -------------------------------------------------------------------------------------------

def _personalize(checks: _Checks, aws, endpoint_url: str | None, local: bool) -> None:
    name = "personalize.reachable"
    try:
        client = _client(aws, "personalize", endpoint_url)
        groups = client.list_dataset_groups(maxResults=1).get("datasetGroups", [])
    except Exception as error:
        code, message = _aws_error(error)
        where = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_PERSONALIZE") or "the regional endpoint"
        if local:
            fix = ("start the local Personalize: `recsys-platform serve --host 127.0.0.1 --port 8765` (or "
                   "`make serve`; `make dev` and `make demo` start it themselves), or point "
                   "RECSYS_PERSONALIZE_ENDPOINT_URL at the one that runs")
        elif code in _DENIED:
            fix = ("grant the platform's identity the Personalize actions it uses (personalize:List*, "
                   "Describe*, Create*, ...; the AWS managed policy AmazonPersonalizeFullAccess has them)")
        else:
            fix = ("check AWS_REGION (Personalize is not in every region), AWS_ENDPOINT_URL_PERSONALIZE and "
                   "the network path")
        checks.add(name, FAILED, f"ListDatasetGroups at {where} failed: {message}", fix)
        return
    none_yet = "" if groups else " (no dataset group yet: `recsys-platform provision` creates it)"
    checks.add(name, OK, f"ListDatasetGroups answered at {client.meta.endpoint_url}{none_yet}")


# ---------------------------------------------------------------------------------------------------------
# IAM policy evaluation, as much as doctor needs: does a policy allow one action on one resource (for one
# service principal), with Deny over Allow, wildcards, NotAction/NotResource, and string conditions on the
# keys doctor knows. Conditions on other keys are reported as not evaluated, never guessed.

ALLOWED, DENIED, IMPLICIT = "allowed", "denied", "implicit"
_STRING_OPERATORS = {"stringequals", "stringlike", "stringequalsignorecase", "stringnotequals",
                     "stringnotlike", "stringnotequalsignorecase", "arnequals", "arnlike"}


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _wildcard(pattern: str, value: str, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _covers(statement: Mapping, key: str, value: str, ignore_case: bool) -> bool:
    """Whether the statement's `key` (Action, Resource) or `Not<key>` takes in `value`."""
    if key in statement:
        return any(_wildcard(str(p), value, ignore_case) for p in _as_list(statement[key]))
    if "Not" + key in statement:
        return not any(_wildcard(str(p), value, ignore_case) for p in _as_list(statement["Not" + key]))
    return False


def _names_service(statement: Mapping, service: str) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return service in _as_list(principal.get("Service")) or "*" in _as_list(principal.get("AWS"))
    return False


def _conditions(statement: Mapping, context: Mapping[str, str]) -> tuple[bool | None, set[str]]:
    """Whether the conditions hold (None when one is on a key or operator doctor cannot evaluate), and the
    keys it could not evaluate."""
    unknown: set[str] = set()
    holds = True
    for operator, entries in (statement.get("Condition") or {}).items():
        base = operator.lower().rpartition(":")[2]  # ForAnyValue:StringLike -> stringlike
        base = base.removesuffix("ifexists")
        for key, expected in (entries or {}).items():
            value = context.get(key.lower())
            if value is None or base not in _STRING_OPERATORS:
                unknown.add(key)
                continue
            ignore_case = base.endswith("ignorecase")
            hit = any(_wildcard(str(e), value, ignore_case) if base.endswith("like")
                      else str(e).lower() == value.lower() if ignore_case else str(e) == value
                      for e in _as_list(expected))
            holds = holds and (not hit if "not" in base else hit)
    return (None if unknown else holds), unknown


def evaluate(document: Mapping, action: str, resource: str, context: Mapping[str, str],
             service_principal: str | None = None) -> tuple[str, set[str]]:
    """(ALLOWED | DENIED | IMPLICIT, condition keys not evaluated) of one policy document. With
    `service_principal`, only statements naming that principal count (bucket and trust policies)."""
    return evaluate_all([document], action, resource, context, service_principal)


def evaluate_all(documents: Iterable[Mapping], action: str, resource: str, context: Mapping[str, str],
                 service_principal: str | None = None) -> tuple[str, set[str]]:
    """`evaluate` over several documents (an identity's policies): one explicit Deny anywhere wins."""
    allowed, notes = False, set()
    for document in documents:
        for statement in _as_list(document.get("Statement")):
            if service_principal is not None and not _names_service(statement, service_principal):
                continue
            names_resource = "Resource" in statement or "NotResource" in statement  # trust policies do not
            if not _covers(statement, "Action", action, True) or (
                    names_resource and not _covers(statement, "Resource", resource, False)):
                continue
            holds, unknown = _conditions(statement, context)
            if holds is False:
                continue
            effect = str(statement.get("Effect", "")).lower()
            if effect == "deny":
                # A Deny whose conditions cannot be evaluated may apply: say denied rather than guess allowed.
                return DENIED, notes | unknown
            if effect == "allow":
                allowed, notes = True, notes | unknown
    return (ALLOWED if allowed else IMPLICIT), notes
