"""One process of the concurrency test: a partition run of the GA4 job, or sensor ticks."""

import sys
import time

from dagster import DagsterInstance, SkipReason, build_sensor_context, materialize

from recsys_platform.ga4.events import ga4_events
from recsys_platform.ga4.refined import refined_assets
from recsys_platform.ga4.sensors import ga4_export_sensor
from recsys_platform.interactions.assets import interactions
from recsys_platform.resources import build_warehouse


def main(kind: str, arg: str) -> int:
    warehouse = build_warehouse("local")  # RECSYS_HOME comes from the environment
    if kind == "run":
        result = materialize([ga4_events, *refined_assets, interactions], partition_key=arg,
                             resources={"warehouse": warehouse}, raise_on_error=False)
        return 0 if result.success else 1
    deadline = time.monotonic() + float(arg)
    ticks = 0
    while time.monotonic() < deadline:
        context = build_sensor_context(instance=DagsterInstance.ephemeral(), resources={"warehouse": warehouse})
        result = ga4_export_sensor(context)
        if isinstance(result, SkipReason) or len(result.run_requests) != 2:
            print(f"sensor tick saw {result}", file=sys.stderr)
            return 1
        ticks += 1
    print(f"ticks={ticks}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
