"""The GA4 export simulator: synthetic or replayed GA4 BigQuery export shards plus the shop's product DB.

Public entry points: `simulate(SimulationConfig)`, `reexport_shard`, `drop_shard`, `list_shards`, and
`read_real_log` for real interaction logs.
"""

from recsys_platform.simulator.behaviour import Behaviour
from recsys_platform.simulator.export_store import connect_with_retry, drop_shard, list_shards, read_shard
from recsys_platform.simulator.ga4_schema import EVENTS_SCHEMA, dataset_name, shard_name
from recsys_platform.simulator.late_events import reexport_shard
from recsys_platform.simulator.real_logs import REAL_LOG_SCHEMA, RealLogError, read_real_log
from recsys_platform.simulator.simulation import DaySummary, SimulationConfig, SimulationSummary, simulate

__all__ = [
    "Behaviour",
    "DaySummary",
    "EVENTS_SCHEMA",
    "REAL_LOG_SCHEMA",
    "RealLogError",
    "SimulationConfig",
    "SimulationSummary",
    "connect_with_retry",
    "dataset_name",
    "drop_shard",
    "list_shards",
    "read_real_log",
    "read_shard",
    "reexport_shard",
    "shard_name",
    "simulate",
]
