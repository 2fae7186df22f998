"""Recommendation quality on real public logs: the default model against three baselines.

For each real slice in `../shared/data/real` (see its README) and each model, three target settings:

- `all`: Personalize's protocol (10% of users held out, newest 10% of their interactions are targets),
  every event type counts as a target -- the setting `GetSolutionMetrics` reports;
- `purchase (P)`: the same split and models, only purchase targets count (few users get scored);
- `purchase (H)`: the platform's purchase holdout (purchases after a time cut, every buyer with
  earlier history held out), which scores many more users on purchases.

Small slices repeat Personalize's split with several seeds and pool the held-out users, so intervals
narrow. Every figure carries the users scored and a 95% bootstrap interval; the default model is
compared to each baseline with a paired bootstrap on the same users.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np

from recsys_platform.shared.paired_comparison import paired_difference
from recsys_platform.modelling.evaluation.recent_purchases_split import recent_purchases_split
from recsys_platform.shared.offline_metrics import UserScores, bootstrap_interval
from recsys_platform.modelling.evaluation.protocol import evaluate_split, personalize_split, score_recommendations

DATA_DIR = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"
DATASETS = [  # name, file, read_real_log format
    ("taobao-users", "taobao_users_tail.csv", "taobao"),
    ("taobao-2h", "taobao_2h_timeslice.csv", "taobao"),
    ("tmall", "tmall_userlog_head.csv", "tmall"),
    ("jd-2016-02", "jd_action_2016-02_head.csv", "jd"),
    ("jd-2016-03", "jd_action_2016-03_head.csv", "jd"),
    ("jd-2016-04", "jd_action_2016-04_head.csv", "jd"),
    ("ga4-purchases", "ga4_purchase_items.csv", "ga4_purchase_items"),
]
QUICK_DATASETS = ("taobao-users", "tmall", "jd-2016-02")
DEFAULT_MODEL = "default (user-personalization-v2)"
MODELS = {  # name -> (recipe, hyperparameters)
    DEFAULT_MODEL: ("aws-user-personalization-v2", {}),
    "popularity": ("aws-popularity-count", {}),
    "implicit ALS (defaults)": ("als", {}),
    "recent items": ("recent-items", {}),
}
# other local models, scored in full mode on slices small enough to keep the run short
EXTRA_MODELS = {
    "EASE (bag of items)": ("ease-or-als", {}),
    "item-kNN": ("item-knn", {}),
}
SERVING_MODELS = {
    DEFAULT_MODEL: ("aws-user-personalization-v2", {}),
    "implicit ALS (defaults)": ("als", {}),
    "item-kNN": ("item-knn", {}),
}
LARGE_SLICE_USERS = 5000
# a large slice holds out thousands of users: score a seeded sample of them to bound the run time
MAX_SCORED_USERS = 1500
MAX_SCORED_USERS_QUICK = 500
BASELINES = ("popularity", "implicit ALS (defaults)", "recent items")
HEADLINE = ("normalized_discounted_cumulative_gain_at_25", "mean_reciprocal_rank_at_25", "precision_at_5")
SHORT = {
    "normalized_discounted_cumulative_gain_at_25": "NDCG@25",
    "mean_reciprocal_rank_at_25": "MRR@25",
    "precision_at_5": "P@5",
    "coverage": "coverage",
}


def load(path: pathlib.Path, log_format: str):
    from recsys_platform.defs.ga4.taxonomy import load_taxonomy
    from recsys_platform.modelling.recommenders.io import interaction_log_from_ga4_events
    from recsys_platform.standins.ga4_simulator.real_logs import read_real_log

    return interaction_log_from_ga4_events(read_real_log(path, log_format), load_taxonomy().event_type_by_ga4_event)


def _pooled(parts: list[tuple[str, UserScores]]) -> UserScores:
    users = [f"{tag}:{user}" for tag, scores in parts for user in scores.users]
    keys = parts[0][1].values.keys()
    return UserScores(users, {key: np.concatenate([s.values[key] for _, s in parts]) for key in keys})


def _summary(scores: UserScores, coverage: float, train_seconds: float, seed: int) -> dict:
    row = {"users_scored": len(scores), "coverage": coverage, "train_seconds": train_seconds}
    for key in HEADLINE:
        values = scores.values[key]
        row[key] = float(values.mean()) if len(scores) else float("nan")
        row[f"{key}_ci"] = list(bootstrap_interval(values, seed))
    return row


def evaluate_dataset(log, seeds: list[int], quick: bool, models: dict) -> dict:
    """Per target setting and model: summary figures, and paired comparisons of the default model."""
    n_items = len(set(log.item_ids.tolist()))
    per_setting: dict[str, dict[str, list]] = {"all": {}, "purchase (P)": {}, "purchase (H)": {}}
    coverage_parts: dict[str, dict[str, list]] = {key: {} for key in per_setting}
    seconds: dict[str, list[float]] = {}
    has_purchases = bool(np.any(log.event_types.astype(str) == "purchase"))
    max_scored = MAX_SCORED_USERS_QUICK if quick else MAX_SCORED_USERS
    for seed in seeds:
        split = personalize_split(log, seed=seed)
        for name, (recipe, hyperparameters) in models.items():
            scored = evaluate_split(
                split, recipe, hyperparameters, seed=seed, catalog_size=n_items, max_scored_users=max_scored
            )
            seconds.setdefault(name, []).append(scored.train_seconds)
            per_setting["all"].setdefault(name, []).append((str(seed), scored.per_user))
            coverage_parts["all"].setdefault(name, []).append(scored.metrics["coverage"])
            if has_purchases:
                purchase_targets = split.targets(["purchase"])
                _, per_user, _ = score_recommendations(
                    scored.recommended,
                    {user: purchase_targets[user] for user in scored.recommended if user in purchase_targets},
                    n_items,
                    seed,
                )
                per_setting["purchase (P)"].setdefault(name, []).append((str(seed), per_user))
                coverage_parts["purchase (P)"].setdefault(name, []).append(scored.metrics["coverage"])
    if has_purchases:
        try:
            holdout = recent_purchases_split(log, max_users=max_scored, seed=seeds[0])
        except ValueError:
            holdout = None
        if holdout is not None:
            for name, (recipe, hyperparameters) in models.items():
                scored = evaluate_split(
                    holdout, recipe, hyperparameters, seed=seeds[0], target_event_types=["purchase"],
                    catalog_size=n_items,
                )
                per_setting["purchase (H)"][name] = [("h", scored.per_user)]
                coverage_parts["purchase (H)"][name] = [scored.metrics["coverage"]]
    result: dict = {}
    for setting, models in per_setting.items():
        if not models or not len(_pooled(models[DEFAULT_MODEL])):
            continue
        pooled = {name: _pooled(parts) for name, parts in models.items()}
        rows = {
            name: _summary(
                scores,
                float(np.mean(coverage_parts[setting][name])),
                float(np.median(seconds[name])),
                seeds[0],
            )
            for name, scores in pooled.items()
        }
        comparisons = {
            baseline: {
                SHORT[metric]: _comparison(pooled[DEFAULT_MODEL], pooled[baseline], metric, seeds[0])
                for metric in HEADLINE[:2]
            }
            for baseline in BASELINES
        }
        result[setting] = {"models": rows, "default_vs_baselines": comparisons}
    return result


def synthetic_catalogue_log(n_items: int, n_users: int, n_interactions: int, seed: int = 0):
    """A log touching every one of `n_items` items, with a long-tailed popularity, for serving timings."""
    from recsys_platform.modelling.recommenders.base import InteractionLog

    rng = np.random.default_rng(seed)
    head = np.minimum((rng.pareto(1.2, n_interactions) * 50).astype(np.int64), n_items - 1)
    items = np.where(rng.random(n_interactions) < 0.5, head, rng.integers(0, n_items, n_interactions))
    items[:n_items] = np.arange(n_items)
    users = rng.integers(0, n_users, n_interactions)
    event_types = np.array(["view", "cart", "purchase"], dtype=object)
    events = rng.choice(event_types, n_interactions, p=[0.8, 0.15, 0.05])
    return InteractionLog(
        np.char.add("u", users.astype(str)).astype(object),
        np.char.add("i", items.astype(str)).astype(object),
        rng.integers(1_600_000_000, 1_610_000_000, n_interactions),
        events,
    )


def serving_latency(n_items: int = 100_000, requests: int = 300) -> dict:
    """Milliseconds per `recommend(user, 25)` for a catalogue of `n_items` items (median, p99)."""
    from recsys_platform.modelling.recommenders.registry import create_recommender

    log = synthetic_catalogue_log(n_items, n_users=30_000, n_interactions=300_000)
    users = np.unique(log.user_ids)[:: max(1, 30_000 // requests)][:requests]
    timings = {}
    for name, (recipe, hyperparameters) in SERVING_MODELS.items():
        started = time.perf_counter()
        model = create_recommender(recipe, hyperparameters).fit(log)
        fit_seconds = time.perf_counter() - started
        model.recommend(users[0], 25)  # first call pays one-off costs
        elapsed = []
        for user in users:
            started = time.perf_counter()
            model.recommend(user, 25)
            elapsed.append((time.perf_counter() - started) * 1000)
        timings[name] = {
            "fit_seconds": fit_seconds,
            "median_ms": float(np.median(elapsed)),
            "p99_ms": float(np.percentile(elapsed, 99)),
        }
    return {"n_items": n_items, "requests": len(users), "models": timings}


def _comparison(default: UserScores, baseline: UserScores, metric: str, seed: int) -> dict:
    comparison = paired_difference(default, baseline, metric, seed)
    return {**vars(comparison), "verdict": comparison.verdict()}


def _cell(row: dict, key: str) -> str:
    low, high = row[f"{key}_ci"]
    return f"{row[key]:.3f} [{low:.3f}, {high:.3f}]"


def markdown_table(results: dict) -> str:
    lines = [
        "| dataset | targets | model | users | NDCG@25 [95% CI] | MRR@25 [95% CI] | P@5 [95% CI] "
        "| coverage | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, settings in results.items():
        for setting, block in settings.items():
            for name, row in block["models"].items():
                lines.append(
                    f"| {dataset} | {setting} | {name} | {row['users_scored']} | "
                    f"{_cell(row, HEADLINE[0])} | {_cell(row, HEADLINE[1])} | {_cell(row, HEADLINE[2])} | "
                    f"{row['coverage']:.3f} | {row['train_seconds']:.2f} |"
                )
    return "\n".join(lines)


def verdicts(results: dict) -> list[str]:
    """One line per (dataset, setting, baseline): how the default model compares on NDCG@25 / MRR@25."""
    out = []
    for dataset, settings in results.items():
        for setting, block in settings.items():
            for baseline, by_metric in block["default_vs_baselines"].items():
                parts = []
                for metric, comparison in by_metric.items():
                    verdict = {"A better": "wins", "B better": "LOSES", "within noise": "tie"}.get(
                        comparison["verdict"], comparison["verdict"]
                    )
                    parts.append(f"{metric} {verdict} ({comparison['difference']:+.3f} "
                                 f"[{comparison['low']:+.3f}, {comparison['high']:+.3f}])")
                out.append(f"{dataset} / {setting} vs {baseline}: " + "; ".join(parts))
    return out


def run(out_dir: pathlib.Path, quick: bool = False) -> dict:
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = DATA_DIR.resolve()
    if not data_dir.is_dir():
        message = f"recsys_quality: skipped, real data folder {data_dir} not found"
        print(message)
        return {"skipped": message}
    started = time.perf_counter()
    datasets = [d for d in DATASETS if d[0] in QUICK_DATASETS] if quick else DATASETS
    results: dict = {}
    for name, file_name, log_format in datasets:
        path = data_dir / file_name
        if not path.is_file():
            print(f"recsys_quality: {name} skipped, {path} not found")
            continue
        log = load(path, log_format)
        n_users = len(set(log.user_ids.tolist()))
        large = n_users > LARGE_SLICE_USERS
        # small slices: pool several seeded splits so more users are scored
        seeds = [0] if quick or large else [0, 1, 2, 3, 4]
        models = MODELS if quick or large else {**MODELS, **EXTRA_MODELS}
        dataset_started = time.perf_counter()
        results[name] = evaluate_dataset(log, seeds, quick, models)
        print(f"recsys_quality: {name} done in {time.perf_counter() - dataset_started:.1f}s", flush=True)
    serving = None
    if not quick:  # fitting three models on 100k items takes most of a minute
        serving = serving_latency()
    table = markdown_table(results)
    lines = verdicts(results)
    print(table)
    print()
    print("Default model vs baselines (paired bootstrap, difference [95% CI]):")
    print("\n".join(f"- {line}" for line in lines))
    if serving:
        print()
        print(f"Serving at {serving['n_items']:,} items ({serving['requests']} requests, recommend 25):")
        for name, timing in serving["models"].items():
            print(f"- {name}: median {timing['median_ms']:.2f} ms, p99 {timing['p99_ms']:.2f} ms "
                  f"(fit {timing['fit_seconds']:.1f} s)")
    summary = {
        "quick": quick,
        "serving": serving,
        "seconds": time.perf_counter() - started,
        "results": results,
        "verdicts": lines,
    }
    (out_dir / "recsys_quality.json").write_text(json.dumps(summary, indent=2, default=float))
    verdict_list = "\n".join(f"- {line}" for line in lines)
    (out_dir / "recsys_quality.md").write_text(f"{table}\n\n{verdict_list}\n")
    return summary


if __name__ == "__main__":
    import sys

    run(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".recsys/bench"), quick="--quick" in sys.argv)
