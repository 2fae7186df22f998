"""ListRecipes / DescribeRecipe: the Personalize recipes this server trains, with the service's ARNs.

The properties are the ones the Personalize developer guide gives for each recipe (name, recipe ARN,
algorithm ARN, feature transformation ARN where documented, recipe type). Only recipes the server can
train are listed (the model library's own names, such as `item-knn`, are not Personalize recipes);
domain recipes (`domain` ECOMMERCE / VIDEO_ON_DEMAND) are not offered, so filtering by domain lists
none.
"""

from __future__ import annotations

from recsys_platform.standins.local_personalize.arns import RECIPE_ARN_PREFIX
from recsys_platform.standins.local_personalize.errors import InvalidInputException, ResourceNotFoundException
from recsys_platform.standins.local_personalize.pagination import paginate

# A fixed date for the catalogue (Personalize reports when each recipe was published; the value only
# has to be a stable timestamp).
_PUBLISHED = 1_546_300_800.0  # 2019-01-01T00:00:00Z

RECIPES: tuple[dict, ...] = (
    {
        "name": "aws-user-personalization-v2",
        "recipeArn": f"{RECIPE_ARN_PREFIX}aws-user-personalization-v2",
        "algorithmArn": "arn:aws:personalize:::algorithm/aws-user-personalization-v2",
        "recipeType": "USER_PERSONALIZATION",
        "description": (
            "Recommends items a user is likely to interact with next, reading the user's history as a "
            "sequence. Served here by the local sequence-aware model (recency, item transitions, "
            "EASE or ALS similarity); interactions recorded with PutEvents change a user's next "
            "recommendations without retraining."
        ),
    },
    {
        "name": "aws-user-personalization",
        "recipeArn": f"{RECIPE_ARN_PREFIX}aws-user-personalization",
        "algorithmArn": "arn:aws:personalize:::algorithm/aws-user-personalization",
        "recipeType": "USER_PERSONALIZATION",
        "description": (
            "Recommends items for a user from their interactions; supports trainingMode UPDATE. Served "
            "here by the same local model as aws-user-personalization-v2."
        ),
    },
    {
        "name": "aws-popularity-count",
        "recipeArn": f"{RECIPE_ARN_PREFIX}aws-popularity-count",
        "algorithmArn": "arn:aws:personalize:::algorithm/aws-popularity-count",
        "featureTransformationArn": "arn:aws:personalize:::feature-transformation/sims",
        "recipeType": "USER_PERSONALIZATION",
        "description": (
            "Recommends the items with the most interactions, the same list for every user; retrain to "
            "reflect new interactions."
        ),
    },
)


def _catalogue() -> list[dict]:
    return [
        {**recipe, "status": "ACTIVE", "creationDateTime": _PUBLISHED, "lastUpdatedDateTime": _PUBLISHED}
        for recipe in RECIPES
    ]


class RecipeOperations:
    def list_recipes(self, params: dict, region: str) -> dict:
        recipes = _catalogue()
        if params.get("domain"):
            recipes = []  # no domain recipes here (they serve recommenders, not solutions)
        page, token = paginate(
            recipes,
            lambda r: (0.0, r["recipeArn"]),
            "ListRecipes",
            {"recipeProvider": params.get("recipeProvider"), "domain": params.get("domain")},
            params,
        )
        summary = ("name", "recipeArn", "status", "creationDateTime", "lastUpdatedDateTime", "domain")
        answer = {"recipes": [{key: r[key] for key in summary if key in r} for r in page]}
        if token:
            answer["nextToken"] = token
        return answer

    def describe_recipe(self, params: dict, region: str) -> dict:
        arn = params["recipeArn"]
        if not arn.startswith(RECIPE_ARN_PREFIX):
            raise InvalidInputException(
                f"recipeArn {arn!r} is not a recipe ARN (expected {RECIPE_ARN_PREFIX}<recipe-name>)"
            )
        for recipe in _catalogue():
            if recipe["recipeArn"] == arn:
                return {"recipe": recipe}
        raise ResourceNotFoundException(f"Recipe {arn} does not exist.")
