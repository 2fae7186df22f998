"""The Personalize runtime (`POST /recommendations`): GetRecommendations from a campaign's model."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict

from recsys_platform.standins.local_personalize.arns import parse_arn
from recsys_platform.standins.local_personalize.control_plane import ControlPlane
from recsys_platform.standins.local_personalize.errors import (
    InternalFailure,
    InvalidInputException,
    ResourceNotFoundException,
    ServiceError,
)
from recsys_platform.modelling.recommenders.base import Recommender

DEFAULT_NUM_RESULTS = 25
MAX_NUM_RESULTS = 500
_SERVING = ("ACTIVE", "UPDATE PENDING", "UPDATE IN_PROGRESS", "UPDATE FAILED", "UPDATE STOPPED")


class Runtime:
    def __init__(self, control_plane: ControlPlane, cached_models: int = 4) -> None:
        self.control_plane = control_plane
        self.cached_models = cached_models
        self._models: OrderedDict[str, Recommender] = OrderedDict()
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

    def get_recommendations(self, params: dict) -> dict:
        for unsupported in ("filterArn", "recommenderArn", "promotions", "metadataColumns"):
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
        try:
            recommendations = self._model(version_arn).recommend(user_id, num_results)
        except ServiceError:
            raise
        except Exception as error:  # most often a model saved by an older version of the model code
            raise InternalFailure(
                f"the model of solution version {version_arn} cannot serve "
                f"({type(error).__name__}: {error}); if the model code changed since it was trained, "
                "train a new solution version"
            ) from error
        return {
            "itemList": [{"itemId": item, "score": float(score)} for item, score in recommendations],
            "recommendationId": f"RID-{uuid.uuid4()}",
        }
