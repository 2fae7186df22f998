"""One process of the concurrency test: a partition run of the GA4 job, or sensor ticks."""

import sys
import time

from dagster import DagsterInstance, SkipReason, build_sensor_context, materialize

from recsys_platform_tests.code_location import GA4_ASSET_NAMES, assets, platform_definitions


def main(kind: str, arg: str) -> int:
    defs = platform_definitions()  # RECSYS_HOME comes from the environment
    warehouse = defs.resources["warehouse"]
    ga4_export_sensor = defs.resolve_sensor_def("ga4_export_sensor")
    if kind == "run":
        result = materialize(assets(*GA4_ASSET_NAMES, defs=defs), partition_key=arg,
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
