"""`recsys-platform evaluate`: train a recipe on a Personalize-format CSV and print its offline metrics.

Scores with Personalize's protocol (see `evaluation.protocol`), prints every metric with the users
scored and a 95% bootstrap interval, the training seconds and the settings used. With `--json` the
last line is one JSON object: {"metrics": {...}, "settings": {...}, "train_seconds": ..., ...}.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

TARGET_CHOICES = ("all", "purchase")
HOLDOUT_CHOICES = ("personalize", "recent-purchases")
PURCHASE_EVENT_TYPE = "purchase"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="train a recipe on an interactions CSV and print Personalize-style offline metrics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--interactions", required=True, help="Personalize interactions CSV "
                        "(USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE[,EVENT_VALUE])")
    parser.add_argument("--items", help="Personalize items CSV (ITEM_ID,...): widens the catalogue "
                        "for coverage")
    parser.add_argument("--recipe", required=True,
                        help="recipe name or ARN, e.g. aws-user-personalization-v2")
    parser.add_argument("--event-types", nargs="+", metavar="TYPE",
                        help="train and score on these EVENT_TYPEs only (space or comma separated)")
    parser.add_argument("--event-weights", metavar="TYPE=WEIGHT,...",
                        help="per event type weights in [0, 1], like Personalize's eventsConfig")
    parser.add_argument("--hyperparameter", action="append", default=[], metavar="NAME=VALUE",
                        help="a recipe hyperparameter (repeatable)")
    parser.add_argument("--targets", choices=TARGET_CHOICES, default="all",
                        help="which held-out interactions count as targets (default: all)")
    parser.add_argument("--holdout", choices=HOLDOUT_CHOICES, default="personalize",
                        help="personalize: Personalize's split (default); recent-purchases: each buyer's "
                        "purchases after a time cut (the newest 20%% of purchases), scored for every buyer "
                        "with earlier history")
    parser.add_argument("--exclude-seen", action="store_true",
                        help="never recommend a held-out user's input items back to them")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out user draw (default 0)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    parser.set_defaults(func=run)


def parse_pairs(text: str, option: str) -> dict[str, str]:
    """`a=1,b=2` -> {"a": "1", "b": "2"}; an error names the option and the bad part."""
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{option}: expected NAME=VALUE, got {part!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def parse_event_weights(text: str | None) -> dict[str, float]:
    weights: dict[str, float] = {}
    for name, value in parse_pairs(text or "", "--event-weights").items():
        try:
            weights[name] = float(value)
        except ValueError:
            raise ValueError(f"--event-weights: weight of {name!r} is not a number: {value!r}") from None
    return weights


def _split_types(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _format_metrics(result) -> str:
    lines = [f"{'metric':<45} {'value':>8}   95% bootstrap interval"]
    for key, value in result.metrics.items():
        interval = result.intervals.get(key)
        bounds = f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval and not math.isnan(interval[0]) else ""
        lines.append(f"{key:<45} {value:>8.4f}   {bounds}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from recsys_platform.modelling.evaluation.recent_purchases_split import recent_purchases_split
    from recsys_platform.modelling.evaluation.protocol import train_and_evaluate
    from recsys_platform.modelling.recommenders.io import read_interactions_csv, read_items_csv

    try:
        log = read_interactions_csv(args.interactions)
        catalog = read_items_csv(args.items) if args.items else None
        event_types = _split_types(args.event_types)
        if event_types is not None:
            present = set(np.unique(log.event_types.astype(str)).tolist())
            unknown = sorted(set(event_types) - present)
            if unknown:
                raise ValueError(f"--event-types: {unknown} not in the file (it has {sorted(present)})")
            log = log.subset(np.isin(log.event_types.astype(str), event_types))
        hyperparameters: dict[str, str] = {}
        for text in args.hyperparameter:
            hyperparameters.update(parse_pairs(text, "--hyperparameter"))
        split = None
        if args.holdout == "recent-purchases":
            split = recent_purchases_split(log, purchase_event_types=[PURCHASE_EVENT_TYPE], seed=args.seed)
        result = train_and_evaluate(
            log,
            args.recipe,
            hyperparameters,
            parse_event_weights(args.event_weights),
            seed=args.seed,
            exclude_seen=args.exclude_seen,
            # the recent-purchases holdout's targets are purchases by construction
            target_event_types=None
            if args.targets == "all" and split is None
            else [PURCHASE_EVENT_TYPE],
            catalog=catalog,
            split=split,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"recsys-platform evaluate: error: {error}", file=sys.stderr)
        return 2
    result.settings.update(
        {
            "interactions_file": str(args.interactions),
            "items_file": args.items,
            "training_event_types": event_types or "all",
        }
    )
    print(f"recipe {args.recipe} ({result.settings['model']}), "
          f"{result.settings['interactions']} interactions, "
          f"catalogue {result.settings['catalog_size']} items")
    settings = result.settings
    print(f"users scored: {result.users_scored} of {settings['held_out_users']} held out "
          f"({settings['protocol']} split; targets: {settings['target_event_types']}; "
          f"exclude seen: {args.exclude_seen}; seed {args.seed})")
    print(f"training seconds (all data): {result.train_seconds:.3f}; "
          f"(evaluation split): {result.evaluation_train_seconds:.3f}")
    print(_format_metrics(result))
    print("settings: " + ", ".join(f"{key}={value}" for key, value in result.settings.items()))
    if result.users_scored == 0:
        print("note: no held-out user has a target of the chosen kind; metrics are NaN", file=sys.stderr)
    if args.json:
        print(json.dumps(_json_safe(result.as_json()), sort_keys=True))
    return 0


def _json_safe(value):
    """NaN is not JSON: it becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value
