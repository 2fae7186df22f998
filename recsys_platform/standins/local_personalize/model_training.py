"""Solution version training: the solution's data filters, Personalize's minimums, a real model.

The model is the recipe's `Recommender` fitted on all the (filtered) interactions; the metrics are
Personalize's, computed by the evaluation protocol (10% of users held out, their newest 10% of
interactions as targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys_platform.standins.local_personalize.errors import InvalidInputException
from recsys_platform.standins.local_personalize.job_runner import JobFailed
from recsys_platform.modelling.recommenders.base import InteractionLog
from recsys_platform.shared.personalize_facts import MIN_INTERACTIONS, MIN_USERS_WITH_TWO_INTERACTIONS
from recsys_platform.modelling.recommenders.registry import create_recommender



@dataclass(frozen=True)
class TrainingSettings:
    """What a solution says about training, in the models' terms."""

    recipe: str
    hyperparameters: dict[str, str]
    event_weights: dict[str, float]
    event_type: str | None  # solution.eventType: train on this event type only
    event_value_threshold: float | None  # solutionConfig.eventValueThreshold
    event_type_thresholds: dict[str, float]  # eventsConfig.eventParametersList[].eventValueThreshold


def _as_float(value: object, field: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidInputException(f"{field} {value!r} is not a number") from None


def training_settings(solution: dict) -> TrainingSettings:
    """Read a solution record's recipe and solutionConfig; InvalidInputException names a bad value."""
    config = solution.get("solutionConfig") or {}
    weights, thresholds = {}, {}
    for parameters in (config.get("eventsConfig") or {}).get("eventParametersList") or []:
        event_type = parameters.get("eventType")
        if not event_type:
            raise InvalidInputException(
                "solutionConfig.eventsConfig.eventParametersList[].eventType is required"
            )
        if parameters.get("weight") is not None:
            weights[event_type] = float(parameters["weight"])
        if parameters.get("eventValueThreshold") is not None:
            thresholds[event_type] = float(parameters["eventValueThreshold"])
    threshold = config.get("eventValueThreshold")
    return TrainingSettings(
        recipe=solution["recipeArn"],
        hyperparameters=dict(config.get("algorithmHyperParameters") or {}),
        event_weights=weights,
        event_type=solution.get("eventType") or None,
        event_value_threshold=None
        if threshold is None
        else _as_float(threshold, "solutionConfig.eventValueThreshold"),
        event_type_thresholds=thresholds,
    )


def check_recipe(settings: TrainingSettings) -> None:
    """Fail CreateSolution early for a recipe or hyperparameters the models do not accept."""
    try:
        create_recommender(settings.recipe, settings.hyperparameters, settings.event_weights)
    except (ValueError, TypeError) as error:
        raise InvalidInputException(f"recipeArn {settings.recipe}: {error}") from None


def filter_interactions(log: InteractionLog, settings: TrainingSettings) -> InteractionLog:
    keep = np.ones(len(log), dtype=bool)
    if settings.event_type:
        keep &= log.event_types == settings.event_type
    values = log.event_values
    if settings.event_value_threshold is not None:
        keep &= values is not None and np.nan_to_num(values, nan=-np.inf) >= settings.event_value_threshold
    for event_type, threshold in settings.event_type_thresholds.items():
        rows = log.event_types == event_type
        below = rows if values is None else rows & ~(np.nan_to_num(values, nan=-np.inf) >= threshold)
        keep &= ~below
    return log.subset(keep)


def check_minimums(log: InteractionLog) -> None:
    """Personalize's documented minimums, counted after the solution's filters."""
    _, counts = np.unique(log.user_ids.astype(str), return_counts=True) if len(log) else (None, np.array([]))
    users_with_two = int((counts >= 2).sum())
    problems = []
    if len(log) < MIN_INTERACTIONS:
        problems.append(f"{len(log)} interactions (at least {MIN_INTERACTIONS} required)")
    if users_with_two < MIN_USERS_WITH_TWO_INTERACTIONS:
        problems.append(
            f"{users_with_two} users with at least 2 interactions "
            f"(at least {MIN_USERS_WITH_TWO_INTERACTIONS} required)"
        )
    if problems:
        raise JobFailed(
            "Insufficient training data after applying the solution's filters: " + "; ".join(problems)
        )


@dataclass(frozen=True)
class TrainedVersion:
    model: object
    metrics: dict[str, float]
    users_scored: int
    train_seconds: float


def train(
    log: InteractionLog, settings: TrainingSettings, catalog: list[str] | None = None, seed: int = 0
) -> TrainedVersion:
    from recsys_platform.modelling.evaluation.protocol import train_and_evaluate

    result = train_and_evaluate(
        log,
        settings.recipe,
        hyperparameters=settings.hyperparameters,
        event_weights=settings.event_weights,
        seed=seed,
        catalog=catalog or None,
    )
    metrics = {key: float(value) for key, value in result.metrics.items()}
    return TrainedVersion(result.model, metrics, int(result.users_scored), float(result.train_seconds))
