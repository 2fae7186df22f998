"""Filters: CreateFilter / DescribeFilter / ListFilters / DeleteFilter, and applying a filter to one
request (GetRecommendations, or a line of a batch inference job).

CreateFilter parses the expression (`filter_expressions`) and checks it against the schemas of the
dataset group's datasets, so a malformed expression or an unknown field is an InvalidInputException at
once, naming the problem. Quotas as the service's: 10 filters per dataset group, 5 distinct dataset
fields per filter, 10 across a dataset group's filters (LimitExceededException).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from recsys_platform.shared.personalize_facts import (
    MAX_FILTER_FIELDS_PER_DATASET_GROUP,
    MAX_FILTERS_PER_DATASET_GROUP,
)
from recsys_platform.standins.local_personalize.arns import make_arn
from recsys_platform.standins.local_personalize.dataset_views import DatasetViews
from recsys_platform.standins.local_personalize.errors import (
    InvalidInputException,
    LimitExceededException,
    ResourceAlreadyExistsException,
)
from recsys_platform.standins.local_personalize.filter_expressions import (
    FilterExpression,
    RequestContext,
    check_against_schemas,
    compile_filter,
    parse_filter_expression,
    parse_filter_value,
)
from recsys_platform.standins.local_personalize.job_runner import ACTIVE
from recsys_platform.standins.local_personalize.resource_kinds import ResourceOperations

_parsed_cache: dict[str, FilterExpression] = {}
_parsed_lock = threading.Lock()


def parsed_expression(text: str) -> FilterExpression:
    with _parsed_lock:
        parsed = _parsed_cache.get(text)
    if parsed is None:
        parsed = parse_filter_expression(text)
        with _parsed_lock:
            if len(_parsed_cache) > 1000:
                _parsed_cache.clear()
            _parsed_cache[text] = parsed
    return parsed


class FilterOperations(ResourceOperations):
    views: DatasetViews

    def _group_schemas(self, group_arn: str) -> dict:
        schemas = {}
        for dataset_type in ("Items", "Interactions", "Users"):
            dataset = self.views.dataset(group_arn, dataset_type)
            if dataset is not None:
                schemas[dataset_type] = self.views.schema_fields(dataset)
        return schemas

    def create_filter(self, params: dict, region: str) -> dict:
        group = self._get_active("dataset_group", params["datasetGroupArn"], "datasetGroupArn")
        group_arn = group["datasetGroupArn"]
        parsed = parse_filter_expression(params["filterExpression"])
        check_against_schemas(parsed, self._group_schemas(group_arn))
        record = {
            "name": params["name"],
            "filterArn": make_arn(region, "filter", params["name"]),
            "datasetGroupArn": group_arn,
            "filterExpression": params["filterExpression"],
            "_region": region,
        }
        with self.store.locked():  # count and create together, or two requests could pass the quota
            if self.store.get("filter", record["filterArn"]) is not None:
                raise ResourceAlreadyExistsException(f"Filter {record['filterArn']} already exists.")
            others = self._in_use_by("filter", "datasetGroupArn", group_arn)
            if len(others) >= MAX_FILTERS_PER_DATASET_GROUP:
                raise LimitExceededException(
                    f"Dataset group {group_arn} has {len(others)} filters (at most {MAX_FILTERS_PER_DATASET_GROUP})."
                )
            fields = set(parsed.fields())
            for other in others:
                fields |= parsed_expression(other["filterExpression"]).fields()
            if len(fields) > MAX_FILTER_FIELDS_PER_DATASET_GROUP:
                raise LimitExceededException(
                    f"With this filter the dataset group's filters would use {len(fields)} distinct dataset "
                    f"fields (at most {MAX_FILTER_FIELDS_PER_DATASET_GROUP})."
                )
            self._create("filter", record)
        return {"filterArn": record["filterArn"]}

    def describe_filter(self, params: dict, region: str) -> dict:
        return self._describe("filter", params["filterArn"], "filterArn")

    def list_filters(self, params: dict, region: str) -> dict:
        return self._list_under("filter", region, params, "datasetGroupArn", "dataset-group")

    def delete_filter(self, params: dict, region: str) -> dict:
        arn = params["filterArn"]
        with self.store.locked():
            self._get("filter", arn, "filterArn")
            self.store.delete("filter", arn)
        return {}

    # ---- applying a filter ----------------------------------------------------------------------

    def usable_filter(self, filter_arn: str, group_arn: str) -> dict:
        """The filter, if it is ACTIVE and belongs to the dataset group whose model answers."""
        record = self._get("filter", filter_arn, "filterArn")
        if record.get("status") != ACTIVE:
            raise InvalidInputException(f"Filter {filter_arn} is {record.get('status')}, not ACTIVE.")
        if record["datasetGroupArn"] != group_arn:
            raise InvalidInputException(
                f"Filter {filter_arn} belongs to dataset group {record['datasetGroupArn']}, not to "
                f"{group_arn}, whose model answers this request."
            )
        return record

    def filter_predicate(
        self,
        filter_record: dict,
        user_id: str | None,
        item_id: str | None,
        filter_values: dict[str, str] | None,
    ) -> Callable[[str], bool]:
        """Whether an item may be recommended in this request, by the filter's expression."""
        parsed = parsed_expression(filter_record["filterExpression"])
        group_arn = filter_record["datasetGroupArn"]
        values = {name: parse_filter_value(name, text) for name, text in (filter_values or {}).items()}
        unknown = sorted(set(values) - parsed.parameters())
        if unknown:
            used = ", ".join(f"${name}" for name in sorted(parsed.parameters())) or "none"
            raise InvalidInputException(
                f"filterValues gives {', '.join(unknown)}, which the filter's expression does not use "
                f"(its parameters: {used})"
            )
        datasets = parsed.datasets()
        items, item_schema = self.views.records(group_arn, "Items") if "Items" in datasets else ({}, {})
        user, user_schema = None, {}
        if "Users" in datasets:
            users, user_schema = self.views.records(group_arn, "Users")
            user = users.get(str(user_id)) if user_id else None
        interactions = {}
        if "Interactions" in datasets and user_id:
            interactions = self.views.recent_interactions(group_arn, str(user_id))
        current_item = None
        if parsed.uses_current_item():
            if not item_id:
                raise InvalidInputException("the filter compares with CurrentItem: give itemId in the request")
            current_item = items.get(item_id)
        context = RequestContext(values, interactions, user, current_item, items.get, item_schema, user_schema)
        return compile_filter(parsed, context)
