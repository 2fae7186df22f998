"""The champion/challenger gate: whether the day's solution version may replace the serving one.

Both versions answer the same platform holdout through batch inference and are scored on the same
targets (holdout_scoring.py); the gate compares the scores with a paired bootstrap interval, so noise
on a small holdout neither promotes a worse model nor keeps a stale one live.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from recsys_platform.defs.personalize.holdout_scoring import HoldoutScore
from recsys_platform.defs.personalize.personalize_setup import GateSpec


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def decide(challenger: float, champion: float, tolerance: float, override: str = "none",
           difference_upper: float | None = None) -> GateDecision:
    """Promote unless the challenger is worse than the champion by more than `tolerance`.

    With `difference_upper` (upper end of the paired 95% interval of challenger - champion), the
    challenger is held only when it is worse beyond the tolerance with confidence: on a small holdout a
    drop within noise does not keep a stale model live. Without it, the means decide.
    """
    if tolerance < 0:
        raise ValueError(f"gate tolerance must be >= 0, got {tolerance}")
    if override == "promote":
        return GateDecision(True, "operator override: promote")
    if override == "hold":
        return GateDecision(False, "operator override: hold")
    if override != "none":
        raise ValueError(f"override must be 'none', 'promote' or 'hold', got {override!r}")
    if challenger != challenger:  # NaN: no held-out user could be scored
        return GateDecision(False, "hold: the challenger could not be scored on the holdout")
    scores = f"challenger {challenger:.4f}, champion {champion:.4f}, tolerance {tolerance}"
    if difference_upper is not None and difference_upper == difference_upper:
        if difference_upper < -tolerance:
            return GateDecision(False, f"hold: challenger worse with 95% confidence ({scores}, "
                                       f"difference upper bound {difference_upper:+.4f})")
        return GateDecision(True, f"promote: not worse beyond the tolerance with 95% confidence ({scores}, "
                                  f"difference upper bound {difference_upper:+.4f})")
    if challenger >= champion - tolerance:
        return GateDecision(True, f"promote: challenger >= champion - tolerance ({scores})")
    return GateDecision(False, f"hold: challenger < champion - tolerance ({scores})")


def _score_metadata(prefix: str, score: HoldoutScore, metric: str) -> dict:
    low, high = score.interval(metric)
    return {
        f"{prefix}_solution_version_arn": score.solution_version_arn,
        f"{prefix}_{metric}": MetadataValue.float(float(score.metrics[metric])),
        f"{prefix}_{metric}_interval_95": f"[{low:.4f}, {high:.4f}]",
        f"{prefix}_users_scored": MetadataValue.int(len(score.per_user)),
    }


def _gate_table(scores: dict[str, HoldoutScore], metric_keys: list[str]) -> str:
    rows = ["| metric | " + " | ".join(scores) + " |", "|---|" + "---|" * len(scores)]
    for key in metric_keys:
        rows.append(f"| {key} | " + " | ".join(f"{s.metrics[key]:.4f}" for s in scores.values()) + " |")
    return "\n".join(rows)


def gate_decision(scores: dict[str, HoldoutScore] | None, gate: GateSpec, tolerance: float,
                  override: str) -> tuple[GateDecision, AssetCheckResult, dict]:
    """The gate's decision on the challenger's and champion's holdout scores (None: they could not be
    scored, so only an operator override decides), its check result, and the metadata that shows why."""
    if scores is None:
        decision = decide(float("nan"), float("nan"), tolerance, override)
        check = AssetCheckResult(
            check_name="challenger_not_worse", passed=False, severity=AssetCheckSeverity.WARN,
            metadata={"decision": decision.reason, "gate_without_override": "the versions could not be scored"},
        )
        return decision, check, {}
    challenger, champion = scores["challenger"].metrics[gate.metric], scores["champion"].metrics[gate.metric]
    from recsys_platform.shared.paired_comparison import paired_difference

    paired = paired_difference(scores["challenger"].per_user, scores["champion"].per_user, gate.metric)
    difference_upper = paired.high if gate.require_confidence else None
    decision = decide(challenger, champion, tolerance, override, difference_upper)
    gate_verdict = decide(challenger, champion, tolerance, "none", difference_upper)
    metadata = {
        **_score_metadata("challenger", scores["challenger"], gate.metric),
        **_score_metadata("champion", scores["champion"], gate.metric),
        "difference_interval_95": f"{paired.difference:+.4f} [{paired.low:+.4f}, {paired.high:+.4f}]",
        "difference_verdict": paired.verdict().replace("A better", "challenger better").replace(
            "B better", "champion better"),
        "holdout_scores": MetadataValue.md(_gate_table(scores, list(scores["challenger"].metrics))),
    }
    check = AssetCheckResult(
        check_name="challenger_not_worse", passed=gate_verdict.promote, severity=AssetCheckSeverity.WARN,
        metadata={"decision": decision.reason, "gate_without_override": gate_verdict.reason},
    )
    return decision, check, metadata


def unscorable_decision(why: str, gate: GateSpec, override: str) -> tuple[GateDecision, AssetCheckResult, dict]:
    """The decision when the holdout is too small to score the versions: the operator's override if given,
    otherwise personalize.yaml `gate.when_unscorable`. Never a failure: a small shop's campaign would
    otherwise stay on its first version, the run failing day after day."""
    if override != "none":
        decision = decide(float("nan"), float("nan"), 0.0, override)
    elif gate.when_unscorable == "promote":
        decision = GateDecision(True, f"promote unscored: {why} (gate.when_unscorable: promote)")
    else:
        decision = GateDecision(False, f"hold unscored: {why} (gate.when_unscorable: hold)")
    check = AssetCheckResult(
        check_name="challenger_not_worse", passed=False, severity=AssetCheckSeverity.WARN,
        description=f"not scored: {why}",
        metadata={"decision": decision.reason, "scored": False, "unscored_because": why,
                  "when_unscorable": gate.when_unscorable},
    )
    metadata = {"scored": False, "unscored_because": why, "when_unscorable": gate.when_unscorable,
                "min_holdout_users": MetadataValue.int(gate.min_holdout_users)}
    return decision, check, metadata
