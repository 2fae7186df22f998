"""`recsys-platform replay-events`: a GA4 intraday table replayed into Personalize's PutEvents.

Exercises the real-time path end to end: the GA4 streaming export's events of a day
(`analytics_<property>.events_intraday_YYYYMMDD`; on the embedded default in `<RECSYS_HOME>/ga4_export.duckdb`)
become PutEvents calls through boto3's `personalize-events` client under the platform's event tracker,
mapped through the taxonomy (GA4 event -> EVENT_TYPE). A user's next recommendations then change
without a retraining. Events of the platform holdout's users are left out (and counted): recorded, they
would join every later training, and the gate would score models on what they were trained on.
"""

from __future__ import annotations

import argparse
import datetime as dt


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay-events",
        help="replay a GA4 intraday table into Personalize PutEvents (the real-time path)",
        description="Reads events_intraday_YYYYMMDD of the GA4 export, maps its events through the taxonomy "
                    "and records them with PutEvents under the platform's event tracker (`recsys-platform "
                    "provision` creates it). Held-out users' events are never recorded. Replaying the same "
                    "table twice records its events twice.",
    )
    parser.add_argument("--day", default=None,
                        help="the intraday table's day, YYYYMMDD or YYYY-MM-DD (default: the newest intraday table)")
    parser.add_argument("--limit", type=int, default=None, help="record at most this many events (the oldest "
                                                                 "users' first, by USER_ID)")
    parser.add_argument("--dry-run", action="store_true", help="read and map the events, record nothing")
    parser.set_defaults(func=run)


def _day(text: str) -> dt.date:
    for pattern in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise SystemExit(f"--day {text!r} is not a date like 20260228 or 2026-02-28")


def run(args: argparse.Namespace) -> int:
    from recsys_platform.defs.ga4.taxonomy import load_taxonomy
    from recsys_platform.defs.personalize.personalize_setup import load_setup
    from recsys_platform.defs.personalize.provisioning import find_event_tracker
    from recsys_platform.defs.personalize.real_time_events import intraday_table, put_events, read_intraday_events
    from recsys_platform.lib.deployments import resources_for
    from recsys_platform.settings import PlatformSettings

    if args.limit is not None and args.limit < 1:
        raise SystemExit("--limit must be at least 1")
    settings = PlatformSettings.from_environment()
    setup, taxonomy = load_setup(), load_taxonomy()
    if not setup.event_tracker:
        raise SystemExit("personalize.yaml names no event_tracker: there is nothing to record events with")
    resources = resources_for(settings)
    # Outside a run, this resolves the resources' EnvVars.
    with resources["warehouse"].process_config_and_initialize_cm() as warehouse, \
            resources["personalize"].process_config_and_initialize_cm() as personalize:
        intraday = sorted((t for t in warehouse.list_export_tables().tables if t.kind == "intraday"),
                          key=lambda t: t.day)
        if args.day:
            table = intraday_table(_day(args.day))
            if table not in {t.table_id for t in intraday}:
                raise SystemExit(f"{settings.export_dataset}.{table} does not exist; intraday tables: "
                                 f"{', '.join(t.table_id for t in intraday) or 'none'}")
        elif intraday:
            table = intraday[-1].table_id
        else:
            raise SystemExit(f"{settings.export_dataset} has no events_intraday_YYYYMMDD table to replay")
        found = read_intraday_events(
            warehouse, table, setup, taxonomy.event_type_by_ga4_event,
            {event.ga4_event: event.event_value for event in taxonomy.events},
        )
        events = found.events if args.limit is None else sorted(
            found.events, key=lambda e: (e.user_id, e.session_id, e.sent_at))[:args.limit]
        print(f"{settings.export_dataset}.{table}: {found.item_rows:,} item rows of tracked events; "
              f"{len(events):,} events of {len({e.user_id for e in events}):,} users to record")
        print(f"  left out: {found.held_out_events:,} events of {len(found.held_out_users):,} held-out users "
              "(the gate's holdout: never recorded, or they would join training)")
        if args.dry_run:
            print("dry run: nothing recorded")
            return 0
        client = personalize.get_client()
        try:
            _, tracking_id = find_event_tracker(client, setup.dataset_group, setup.event_tracker)
        except LookupError as error:
            raise SystemExit(str(error)) from None
        # personalize-events is the data plane PutEvents belongs to; same session, same endpoint.
        events_client = personalize.aws.client("personalize-events", personalize.endpoint_url)
        sent = put_events(events_client, tracking_id, events)
    by_type = ", ".join(f"{name} {count:,}" for name, count in sorted(sent.items()) if name != "calls")
    print(f"recorded {sum(v for k, v in sent.items() if k != 'calls'):,} events in {sent['calls']:,} PutEvents "
          f"calls (tracking id {tracking_id}): {by_type or 'none'}")
    return 0
