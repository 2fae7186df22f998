"""`recsys-platform simulate`: write simulated (or replayed) GA4 export shards and the product DB."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from recsys_platform.settings import PlatformSettings, SettingsError
    from recsys_platform.standins.ga4_simulator.real_logs import RealLogError, parse_column_mapping, parse_event_map
    from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate

    try:
        settings = PlatformSettings.from_environment()
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
        )
        summary = simulate(config)
    except (RealLogError, SettingsError, ValueError) as error:
        print(f"recsys-platform simulate: {error}")
        return 2
    print(summary.table())
    print(
        f"{len(summary.days)} days, {summary.events} events, {len(summary.shards)} shards "
        f"(analytics_{summary.property_id}) in {summary.export_db}; "
        f"{summary.orders} orders in {summary.product_db}"
    )
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
