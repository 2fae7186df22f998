"""The Personalize chain end to end on the embedded default: snapshots -> import -> training -> campaign
(first deployment), then the next day's chain through the champion/challenger gate. Wall seconds per
step and in total, median of repeats, on a synthetic shop of demo size."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

DAYS = ("2026-02-27", "2026-02-28")
STEPS = ("personalize_interactions_csv", "personalize_items_csv", "personalize_users_csv",
         "personalize_dataset_import", "personalize_solution_version", "personalize_campaign")


def _shop(root: Path, users: int, items: int, events: int, seed: int = 7):
    """Interactions over 30 days (users favour one of 8 item clusters, zipf-skewed inside it) and the
    product DB, in DuckDB files laid out as the chain's tests lay them out."""
    import numpy as np
    import pyarrow as pa

    from recsys_platform_tests.personalize.synthetic_shop import fill_warehouse

    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, events)
    item = ((user % 8) * (items // 8) + rng.zipf(1.5, events) % (items // 8)) % items
    last = dt.date.fromisoformat(DAYS[-1])
    offsets = rng.integers(0, 30, events)
    day = np.array([last - dt.timedelta(days=int(o)) for o in range(30)])[offsets]
    midnight = {d: int(dt.datetime.combine(d, dt.time(), tzinfo=ZoneInfo("Asia/Seoul")).timestamp()) for d in set(day)}
    stamps = np.array([midnight[d] for d in day]) + rng.integers(0, 86_400, events)
    kinds = np.array(["view"] * 12 + ["cart"] * 3 + ["like"] * 2 + ["purchase"] * 3)[rng.integers(0, 20, events)]
    table = pa.table({
        "event_date": pa.array(day, pa.date32()), "USER_ID": np.char.add("u", user.astype(str)),
        "ITEM_ID": np.char.add("i", item.astype(str)), "TIMESTAMP": stamps.astype("int64"),
        "EVENT_TYPE": kinds, "EVENT_VALUE": rng.uniform(1, 100, events), "source": ["ga4"] * events,
    })
    return fill_warehouse(root, table, n_items=items, n_users=users)


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    started, seconds = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            seconds[event.step_key] = entry.timestamp - started[event.step_key]
    return seconds


def _one_repeat(users: int, items: int, events: int) -> dict:
    from dagster import DagsterInstance, materialize

    from recsys_platform.definitions import build_definitions
    from recsys_platform.settings import PlatformSettings
    from recsys_platform.standins.local_personalize.server import start_in_background

    with tempfile.TemporaryDirectory(prefix="recsys-chain-bench-") as home:
        os.environ["RECSYS_HOME"] = home
        _shop(Path(home), users, items, events)
        server = start_in_background(f"{home}/personalize", f"{home}/lake")
        os.environ["RECSYS_PERSONALIZE_ENDPOINT_URL"] = server.endpoint_url
        defs = build_definitions(PlatformSettings.from_environment())
        assets = [defs.get_assets_def(name) for name in STEPS]
        resources = defs.resources
        instance = DagsterInstance.ephemeral()
        sample = {}
        try:
            for label, day in zip(("first_day", "gated_day"), DAYS):
                started = time.perf_counter()
                # Default run config, as the schedule and the demo run it (polling starts at 1s and doubles).
                result = materialize(assets, instance=instance, partition_key=day, resources=resources)
                sample[label] = {"total": time.perf_counter() - started, **_step_seconds(instance, result.run_id)}
                sample[label]["decision"] = result.asset_value("personalize_campaign").decision
        finally:
            server.stop()
            del os.environ["RECSYS_PERSONALIZE_ENDPOINT_URL"]
    return sample


def run(out_dir: Path, quick: bool = False) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    users, items, events = (500, 200, 20_000) if quick else (5_000, 2_000, 200_000)
    repeats = 1 if quick else 3
    previous_home = os.environ.get("RECSYS_HOME")
    try:
        samples = [_one_repeat(users, items, events) for _ in range(repeats)]
    finally:
        if previous_home is None:
            os.environ.pop("RECSYS_HOME", None)
        else:
            os.environ["RECSYS_HOME"] = previous_home
    rows = []
    for label in ("first_day", "gated_day"):
        row = {"run": label, "decision": samples[-1][label]["decision"]}
        for step in ("total", *STEPS):
            row[step] = round(statistics.median(s[label].get(step, float("nan")) for s in samples), 2)
        rows.append(row)
    result = {"users": users, "items": items, "interactions": events, "repeats": repeats, "rows": rows}
    print(f"\nPersonalize chain on the embedded default: {events:,} interactions, {users:,} users, {items:,} items "
          f"(median of {repeats})")
    header = ["run", "total", *(s.replace("personalize_", "") for s in STEPS)]
    print("  ".join(f"{h:>16}" for h in header))
    for row in rows:
        print("  ".join(f"{row[k]:>16}" if k == "run" else f"{row[k]:>16.2f}" for k in ("run", "total", *STEPS)))
    for row in rows:
        print(f"  {row['run']}: {row['decision']}")
    (out_dir / "personalize_chain.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    run(Path(".recsys/bench"), quick=True)
