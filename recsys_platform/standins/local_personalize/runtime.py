"""The Personalize runtime (`POST /recommendations`): GetRecommendations from a campaign's model.

Two things happen at request time, as on the service:
- events recorded with PutEvents since the campaign's model was trained are folded into the user's
  history for this request ("Amazon Personalize adds the new recorded event data to the user's
  history ... for this user only", developer guide, "How real-time events influence
  recommendations"), through the solution's own event filters and weights; known items only (new
  items need a retraining). Popularity-Count ignores them, as documented;
- a filter (`filterArn` + `filterValues`) restricts the ranking (`filter_expressions`).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from recsys_platform.modelling.recommenders.base import InteractionLog, RecentInteractions, Recommender
from recsys_platform.shared.personalize_facts import recipe_name
from recsys_platform.standins.local_personalize import model_training
from recsys_platform.standins.local_personalize.arns import parse_arn
from recsys_platform.standins.local_personalize.control_plane import ControlPlane
from recsys_platform.standins.local_personalize.errors import (
    InternalFailure,
    InvalidInputException,
    ResourceNotFoundException,
    ServiceError,
    redact_paths,
)
from recsys_platform.standins.local_personalize.ranking import ranked

DEFAULT_NUM_RESULTS = 25
MAX_NUM_RESULTS = 500
_SERVING = ("ACTIVE", "UPDATE PENDING", "UPDATE IN_PROGRESS", "UPDATE FAILED", "UPDATE STOPPED")
# recipes whose recommendations do not change until retrained (developer guide: "unless you are using
# the SIMS or Popularity-Count recipes")
_NO_REAL_TIME_EVENTS = ("aws-popularity-count", "aws-sims")


@dataclass(frozen=True)
class VersionFacts:
    """What serving needs of an ACTIVE solution version (which no longer changes)."""

    group_arn: str
    settings: model_training.TrainingSettings
    events_mark: int  # events received after this (ns) were not in the training data
    folds_events: bool


class Runtime:
    def __init__(self, control_plane: ControlPlane, cached_models: int = 4) -> None:
        self.control_plane = control_plane
        self.cached_models = cached_models
        self._models: OrderedDict[str, Recommender] = OrderedDict()
        self._facts: dict[str, VersionFacts] = {}
        self._lock = threading.Lock()

    def _model(self, solution_version_arn: str) -> Recommender:
        with self._lock:
            model = self._models.get(solution_version_arn)
            if model is not None:
                self._models.move_to_end(solution_version_arn)
                return model
        model = self.control_plane.load_model(solution_version_arn)  # outside the lock: may take a while
        with self._lock:
            self._models[solution_version_arn] = model
            while len(self._models) > self.cached_models:
                self._models.popitem(last=False)
        return model

    def _version_facts(self, solution_version_arn: str) -> VersionFacts:
        with self._lock:
            facts = self._facts.get(solution_version_arn)
        if facts is not None:
            return facts
        version = self.control_plane.store.get("solution_version", solution_version_arn)
        if version is None:
            raise ResourceNotFoundException(f"Solution version {solution_version_arn} does not exist.")
        facts = VersionFacts(
            group_arn=version["datasetGroupArn"],
            settings=model_training.training_settings(version),
            events_mark=int(version.get("_events_mark", 0)),
            folds_events=recipe_name(version["recipeArn"]) not in _NO_REAL_TIME_EVENTS,
        )
        with self._lock:
            self._facts[solution_version_arn] = facts
        return facts

    def recent_interactions(self, facts: VersionFacts, user_id: str) -> RecentInteractions | None:
        """The user's events recorded since the model was trained, through the solution's filters."""
        events = [
            e for e in self.control_plane.views.events_of(facts.group_arn, user_id) if e.received > facts.events_mark
        ]
        if not events:
            return None
        values = np.array([np.nan if e.event_value is None else float(e.event_value) for e in events])
        log = InteractionLog(
            user_ids=np.full(len(events), user_id, dtype=object),
            item_ids=np.array([e.item_id for e in events], dtype=object),
            timestamps=np.array([e.timestamp for e in events], dtype=np.int64),
            event_types=np.array([e.event_type for e in events], dtype=object),
            event_values=values,
        )
        log = model_training.filter_interactions(log, facts.settings)
        if not len(log):
            return None
        return RecentInteractions(log.item_ids.tolist(), log.timestamps.tolist(), log.event_types.tolist())

    def get_recommendations(self, params: dict) -> dict:
        for unsupported in ("recommenderArn", "promotions", "metadataColumns"):
            if params.get(unsupported):
                raise InvalidInputException(f"{unsupported} is not supported by this service.")
        campaign_arn = params.get("campaignArn")
        if not campaign_arn:
            raise InvalidInputException("campaignArn is required.")
        parse_arn(campaign_arn, "campaign", "campaignArn")
        campaign = self.control_plane.store.get("campaign", campaign_arn)
        if campaign is None:
            raise ResourceNotFoundException(f"Campaign {campaign_arn} does not exist.")
        if campaign["status"] not in _SERVING:
            raise InvalidInputException(
                f"Campaign {campaign_arn} is not ACTIVE (status {campaign['status']})."
            )
        user_id = params.get("userId")
        if not user_id:
            raise InvalidInputException("userId is required for this campaign's recipe.")
        num_results = params.get("numResults")
        if num_results is None or num_results == 0:
            num_results = DEFAULT_NUM_RESULTS
        if not 1 <= num_results <= MAX_NUM_RESULTS:
            raise InvalidInputException(
                f"numResults must be between 1 and {MAX_NUM_RESULTS}, got {num_results}."
            )
        version_arn = campaign["solutionVersionArn"]
        facts = self._version_facts(version_arn)
        allowed = None
        if params.get("filterArn"):
            filter_record = self.control_plane.usable_filter(params["filterArn"], facts.group_arn)
            allowed = self.control_plane.filter_predicate(
                filter_record, user_id, params.get("itemId"), params.get("filterValues")
            )
        elif params.get("filterValues"):
            raise InvalidInputException("filterValues needs a filterArn to apply to.")
        recent = self.recent_interactions(facts, user_id) if facts.folds_events else None
        try:
            recommendations = ranked(self._model(version_arn), user_id, num_results, recent, allowed)
        except ServiceError:
            raise
        except Exception as error:  # most often a model saved by an older version of the model code
            raise InternalFailure(
                f"the model of solution version {version_arn} cannot serve "
                f"({type(error).__name__}: {redact_paths(str(error))}); if the model code changed since "
                "it was trained, train a new solution version"
            ) from error
        return {
            "itemList": [{"itemId": item, "score": float(score)} for item, score in recommendations],
            "recommendationId": f"RID-{uuid.uuid4()}",
        }
