"""Amazon Personalize's documented facts, in one place: the pipeline plans by them and the local
Personalize enforces them. Sources: the Personalize developer guide (data requirements, recipes,
GetSolutionMetrics) and the API reference (CreateSolutionVersion, CreateDatasetImportJob)."""

from __future__ import annotations

# Data minimums for training, counted after the solution's event-type filter.
MIN_INTERACTIONS = 1000
MIN_USERS_WITH_TWO_INTERACTIONS = 25
# An INCREMENTAL dataset import job must bring at least this many records.
MIN_INCREMENTAL_IMPORT_RECORDS = 1000

# CreateSolutionVersion: trainingMode UPDATE is accepted only for solutions of these recipes
# (after a FULL version exists); every other recipe trains FULL only.
RECIPES_WITH_UPDATE = ("aws-user-personalization", "aws-hrnn-coldstart")

# The status of every asynchronous resource once it is usable.
ACTIVE = "ACTIVE"
# Terminal states that are not success; a job in one of them is never waited on again.
FAILED_STATUSES = ("CREATE FAILED", "CREATE STOPPED", "DELETE PENDING", "DELETE IN_PROGRESS")

# Job and resource names: `[a-zA-Z0-9][a-zA-Z0-9\-_]*`, at most 63 characters.
NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,62}$"

# GetSolutionMetrics keys for the default cut-offs, in the service's order.
METRIC_CUTOFFS = (5, 10, 25)


def metric_keys(k_values: tuple[int, ...] = METRIC_CUTOFFS) -> list[str]:
    """The keys GetSolutionMetrics returns for the cut-offs `k_values`, in its order."""
    top = max(k_values)
    return (
        ["coverage", f"mean_reciprocal_rank_at_{top}"]
        + [f"normalized_discounted_cumulative_gain_at_{k}" for k in k_values]
        + [f"precision_at_{k}" for k in k_values]
    )


METRIC_KEYS = tuple(metric_keys())


def recipe_name(recipe_arn: str) -> str:
    """`aws-user-personalization-v2` for `arn:aws:personalize:::recipe/aws-user-personalization-v2`."""
    return recipe_arn.rsplit("/", 1)[-1]


def allows_update_training(recipe_arn: str) -> bool:
    return recipe_name(recipe_arn) in RECIPES_WITH_UPDATE


def is_failed(status: str) -> bool:
    return status in FAILED_STATUSES or status.endswith("FAILED")
