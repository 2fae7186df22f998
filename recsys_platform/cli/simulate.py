"""`recsys-platform simulate`: write simulated (or replayed) GA4 export shards and the product DB."""

from __future__ import annotations

import argparse
from pathlib import Path

from recsys_platform.standins.ga4_simulator.product_store import REPLICA_LAYOUTS
from recsys_platform.standins.ga4_simulator.real_logs import LOG_FORMATS, TIMESTAMP_UNITS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write GA4 export shards and the product DB (synthetic, or replayed from a real log)",
        description="Simulate a shop's GA4 BigQuery export (analytics_<property>.events_YYYYMMDD) and its "
        "product DB in the local state folder (RECSYS_HOME), or replay a real interaction log.",
    )
    parser.add_argument("--days", type=_positive_int, default=7, help="property-local days to simulate (7)")
    parser.add_argument("--events-per-day", type=_positive_int, default=10_000, help="events per day (10000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed; same seed, same data (42)")
    parser.add_argument("--start-date", help="first day, YYYY-MM-DD (default RECSYS_START_DATE or 2026-01-01)")
    parser.add_argument("--property-id", help="GA4 property id (default RECSYS_GA4_PROPERTY_ID)")
    parser.add_argument("--timezone", help="property time zone, IANA name (default RECSYS_GA4_TIMEZONE)")
    parser.add_argument("--users", type=_positive_int, default=2_000, help="registered users (2000)")
    parser.add_argument("--items", type=_positive_int, default=1_000, help="catalogue size (1000)")
    parser.add_argument("--home", type=Path, help="state folder (default RECSYS_HOME or .recsys)")
    parser.add_argument("--from-log", type=Path, metavar="FILE",
                        help="replay this interaction log instead (--days, --events-per-day, --users and "
                        "--items are then ignored)")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="csv", help="format of --from-log (csv)")
    parser.add_argument("--columns",
                        help="csv only: user_id=COL,item_id=COL,timestamp=COL,event=COL[,category=COL]")
    parser.add_argument("--event-map", help="csv only: VALUE=ga4_event,... (e.g. pv=view_item,buy=purchase)")
    parser.add_argument("--timestamp-unit", choices=tuple(TIMESTAMP_UNITS), default="s",
                        help="csv only: unit of the timestamp column (s)")
    realities = parser.add_argument_group(
        "export realities", "what every real GA4 property has, at realistic shares (set a share to 0 to turn it off)")
    realities.add_argument("--consent-denied-share", type=_share, metavar="SHARE", default=0.03,
                           help="sessions sent as consent-denied cookieless pings (0.03)")
    realities.add_argument("--pii-url-share", type=_share, metavar="SHARE", default=0.01,
                           help="web events whose page URL carries an email, a token or an order id (0.01)")
    realities.add_argument("--email-user-id-share", type=_share, metavar="SHARE", default=0.002,
                           help="registered users whose GA4 user_id is their login email (0.002)")
    realities.add_argument("--erasure-request-share", type=_share, metavar="SHARE", default=0.005,
                           help="registered users listed in the product DB's erasure requests (0.005)")
    realities.add_argument("--late-event-share", type=_late_share, metavar="SHARE", default=0.002,
                           help="events of a day re-exported into it during the next two days (0.002)")
    realities.add_argument("--no-streaming-export", dest="streaming_export", action="store_false",
                           help="no events_intraday_YYYYMMDD table (by default the last day's is there)")
    opt_in = parser.add_argument_group("opt-in realities")
    opt_in.add_argument("--fresh-daily-export", action="store_true",
                        help="GA4 360: also write events_fresh_YYYYMMDD for every day")
    opt_in.add_argument("--over-limit-day", action="append", default=[], metavar="YYYY-MM-DD",
                        help="a day over the daily export limit: no daily table, the intraday one is the only "
                        "copy (repeatable)")
    opt_in.add_argument("--daily-export-limit", type=_positive_int, metavar="EVENTS",
                        help="no daily table for a day with more events (a standard property's limit is 1000000)")
    opt_in.add_argument("--app-streams", action="store_true",
                        help="Android and iOS app streams besides the web stream")
    opt_in.add_argument("--app-session-share", type=_share, metavar="SHARE", default=0.4,
                        help="with --app-streams: sessions of phone and tablet users that happen in the app (0.4)")
    opt_in.add_argument("--app-property-id", metavar="ID",
                        help="put the app streams in their own property (dataset analytics_ID); needs --app-streams. "
                        "When RECSYS_GA4_PROPERTY_IDS names two properties (and --property-id is not given), "
                        "the app streams go to the second one by default")
    opt_in.add_argument("--replica-layout", choices=REPLICA_LAYOUTS, default="simulator",
                        help="product DB layout: simulator (string ids) or datastream (a Datastream replica of "
                        "MySQL: INT64 ids, shop_* tables, datastream_metadata) (simulator)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from recsys_platform.settings import PlatformSettings, SettingsError
    from recsys_platform.standins.ga4_simulator.real_logs import RealLogError, parse_column_mapping, parse_event_map
    from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate

    try:
        settings = PlatformSettings.from_environment()
        app_streams, app_property_id = _app_property(args, settings.ga4_property_ids)
        config = SimulationConfig(
            home=args.home or settings.home,
            property_id=args.property_id or settings.ga4_property_id,
            timezone=args.timezone or settings.timezone,
            start_date=args.start_date or settings.start_date,
            days=args.days,
            events_per_day=args.events_per_day,
            seed=args.seed,
            users=args.users,
            items=args.items,
            from_log=args.from_log,
            log_format=args.log_format,
            log_columns=parse_column_mapping(args.columns) if args.columns else None,
            log_event_map=parse_event_map(args.event_map) if args.event_map else None,
            log_timestamp_unit=args.timestamp_unit,
            consent_denied_share=args.consent_denied_share,
            pii_url_share=args.pii_url_share,
            email_user_id_share=args.email_user_id_share,
            erasure_request_share=args.erasure_request_share,
            late_event_share=args.late_event_share,
            streaming_export=args.streaming_export,
            fresh_daily_export=args.fresh_daily_export,
            over_limit_days=tuple(args.over_limit_day),
            daily_export_limit=args.daily_export_limit,
            app_streams=app_streams,
            app_session_share=args.app_session_share,
            app_property_id=app_property_id,
            replica_layout=args.replica_layout,
        )
        summary = simulate(config)
    except (RealLogError, SettingsError, ValueError) as error:
        print(f"recsys-platform simulate: {error}")
        return 2
    print(summary.table())
    print(
        f"{len(summary.days)} days, {summary.events} events, {len(summary.shards)} shards "
        f"(analytics_{summary.property_id}), {len(summary.tables)} export tables in all "
        f"({', '.join(summary.datasets)}) in {summary.export_db}; {summary.orders} orders in {summary.product_db}"
    )
    return 0


def _app_property(args: argparse.Namespace, property_ids: tuple[str, ...]) -> tuple[bool, str | None]:
    """(app streams, their property): as given, or, for a deployment of a web and an app property, the
    deployment's second property with app streams."""
    if args.app_property_id or args.property_id or len(property_ids) == 1:
        return args.app_streams, args.app_property_id
    if len(property_ids) > 2:
        raise ValueError(f"RECSYS_GA4_PROPERTY_IDS names {len(property_ids)} properties; the simulator writes a "
                         "web property and at most one app property: pass --property-id (and --app-property-id)")
    return True, property_ids[1]


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _late_share(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
