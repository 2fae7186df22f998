"""Everything the chain contributes to the code location (merged by recsys_platform.definitions)."""

from recsys_platform.personalize.campaign import personalize_campaign
from recsys_platform.personalize.comparison import personalize_model_comparison
from recsys_platform.personalize.retraining import personalize_retraining_job, personalize_retraining_schedule
from recsys_platform.personalize.snapshots import (
    personalize_interactions_csv,
    personalize_items_csv,
    personalize_users_csv,
)
from recsys_platform.personalize.training import personalize_dataset_import, personalize_solution_version

assets = [
    personalize_interactions_csv,
    personalize_items_csv,
    personalize_users_csv,
    personalize_dataset_import,
    personalize_solution_version,
    personalize_campaign,
    personalize_model_comparison,
]
asset_checks: list = []  # every check is declared as a check spec on its asset
jobs = [personalize_retraining_job]
schedules = [personalize_retraining_schedule]
sensors: list = []
