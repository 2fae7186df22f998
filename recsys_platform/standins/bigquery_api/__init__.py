"""A BigQuery stand-in on DuckDB that the unmodified google-cloud-bigquery client reaches over HTTP.

The production deployment talks to BigQuery through google-cloud-bigquery (via dagster-gcp); to run it
whole on one machine, this package speaks the subset of BigQuery's v2 REST API the platform uses, with
BigQuery's resource shapes, errors and type rules, and stores the data in DuckDB files. No emulator
that installs here covers wildcard tables, `__TABLES__`, transactions and query parameters, so this one
is written for it. Only endpoint settings differ from production:

    BIGQUERY_EMULATOR_HOST=http://127.0.0.1:9050             # where the client sends /bigquery/v2/...
    GOOGLE_APPLICATION_CREDENTIALS=<key written by the stand-in>  # its token_uri is the stand-in's /token

    recsys-platform serve-bigquery --port 9050 --project shop-analytics=.recsys/ga4_export.duckdb
    # or, in-process: standin = server.start_in_background(data_dir, projects={...});
    #                 standin.write_credentials(path, "shop-platform"); standin.endpoint_url; standin.stop()

Rooms: `server` (HTTP, routing, loopback only), `auth` (service-account keys, JWT-bearer token
endpoint), `resources` (datasets, tables, table data), `jobs` (query jobs, paging), `execute`
(statements, scripts, transactions, destination tables), `translate` (names, parameters, wildcard tables,
`__TABLES__` -> DuckDB SQL, with `recsys_platform.shared.bigquery_on_duckdb`), `typecheck` (BigQuery's
type rules DuckDB would relax), `schema` (types), `rows` (JSON row format), `storage` and `catalog`
(DuckDB files and the metadata BigQuery keeps beside them).
"""

from recsys_platform.standins.bigquery_api.auth import write_service_account_key
from recsys_platform.standins.bigquery_api.server import BigQueryStandIn, create_server, start_in_background

__all__ = ["BigQueryStandIn", "create_server", "start_in_background", "write_service_account_key"]
