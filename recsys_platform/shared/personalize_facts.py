"""Amazon Personalize's documented facts, in one place: the pipeline plans by them and the local
Personalize enforces them. Sources: the Personalize developer guide (data requirements, recipes,
GetSolutionMetrics) and the API reference (CreateSolutionVersion, CreateDatasetImportJob)."""

from __future__ import annotations

# Data minimums for training, counted after the solution's event-type filter.
MIN_INTERACTIONS = 1000
MIN_USERS_WITH_TWO_INTERACTIONS = 25
# An INCREMENTAL dataset import job must bring at least this many records.
MIN_INCREMENTAL_IMPORT_RECORDS = 1000
# ... into these dataset types ("Updating existing bulk data": "To append data to an item interactions
# dataset or action interactions dataset ... you must have at minimum 1000 new ... records").
INCREMENTAL_MINIMUM_DATASET_TYPES = ("Interactions", "Action_Interactions")

# Filters (developer guide, "Filter expressions" and "Service quotas").
MAX_FILTERS_PER_DATASET_GROUP = 10
MAX_FILTER_FIELDS = 5  # distinct dataset fields in one filter, across its chained expressions
MAX_FILTER_FIELDS_PER_DATASET_GROUP = 10  # distinct dataset fields across all filters of a dataset group
# Interactions filters consider at most this many of a user's most recent interactions per event type.
MAX_FILTER_INTERACTIONS_PER_EVENT_TYPE = 100

# Event trackers: one per dataset group ("You can create only one event tracker for a dataset group").
EVENT_TRACKERS_PER_DATASET_GROUP = 1

# Data deletion jobs ("Deleting users"): at most this many PENDING per dataset group, and inputs of at
# most this many bytes.
MAX_PENDING_DATA_DELETION_JOBS = 5
MAX_DATA_DELETION_INPUT_BYTES = 100 * 1024 * 1024
# A data deletion job's statuses have no phase and it ends COMPLETED, not ACTIVE:
# PENDING > IN_PROGRESS > COMPLETED or FAILED.
DATA_DELETION_COMPLETED = "COMPLETED"
DATA_DELETION_FAILED = "FAILED"

# A campaign that follows its solution (campaignConfig.syncWithLatestSolutionVersion) names the
# solution as `<solutionArn>/$LATEST` in solutionVersionArn.
LATEST_SOLUTION_VERSION_SUFFIX = "/$LATEST"

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
