"""Event trackers (control plane) and the `personalize-events` operations PutEvents, PutItems, PutUsers.

As the developer guide describes ("Recording real-time events", "Importing individual records"):
- a dataset group has at most one event tracker; its `trackingId` (usable once the tracker is ACTIVE)
  is what PutEvents names;
- PutEvents appends the events to the dataset group's Interactions dataset (`userId`, `itemId`,
  `sentAt` are USER_ID, ITEM_ID, TIMESTAMP; `eventType`, `eventValue` are EVENT_TYPE, EVENT_VALUE;
  `properties` holds the schema's other fields in camel case). The next training reads them with the
  bulk data, and a campaign folds a user's events recorded since its model was trained into that
  user's history at request time (`runtime`), so they change the user's next recommendations without
  retraining (for the history-based recipes; Popularity-Count needs a retraining, as on the service);
- an anonymous user's events carry only a sessionId: recommendations can be asked for the sessionId,
  and a training attributes a session's events to the userId that one event of the session names;
- PutItems / PutUsers add or replace (same ID) records of the Items / Users dataset; filters see them
  at the next request. Records imported in bulk stay; a FULL import replaces bulk data only.
"""

from __future__ import annotations

import json
import time
import uuid

from recsys_platform.shared.personalize_facts import EVENT_TRACKERS_PER_DATASET_GROUP
from recsys_platform.standins.local_personalize import avro_schemas
from recsys_platform.standins.local_personalize.arns import ACCOUNT_ID, make_arn
from recsys_platform.standins.local_personalize.avro_schemas import SchemaField
from recsys_platform.standins.local_personalize.dataset_views import dataset_arn
from recsys_platform.standins.local_personalize.errors import (
    InvalidInputException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
)
from recsys_platform.standins.local_personalize.job_runner import ACTIVE
from recsys_platform.standins.local_personalize.resource_kinds import ResourceOperations
from recsys_platform.standins.local_personalize.tracked_events import EVENTS_FILE, RECORDS_FILE, append_lines

INTERACTION_MEMBERS = ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE")


def _compact(name: str) -> str:
    """`CREATION_TIMESTAMP`, `creationTimestamp` and `creation_timestamp` all compact to the same key."""
    return name.replace("_", "").lower()


def _coerce(value: object, field: SchemaField, where: str) -> object:
    label = f"{where}: {field.name}"
    if value is None:
        if not field.nullable:
            raise InvalidInputException(f"{label} must not be null (the schema does not allow null)")
        return None
    if field.avro_type == "string":
        if isinstance(value, list) and field.categorical and all(isinstance(v, str) for v in value):
            return "|".join(value)  # categories, as the CSV format writes them
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidInputException(f"{label} must be a string")
        return str(value)
    if field.avro_type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise InvalidInputException(f"{label} must be true or false")
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value) if field.avro_type in ("float", "double") else int(str(value))
    except (TypeError, ValueError):
        kind = "an integer" if field.avro_type in ("int", "long") else "a number"
        raise InvalidInputException(f"{label} {str(value)[:40]!r} is not {kind}") from None
    return number


def schema_properties(
    text: str | None, fields: list[SchemaField], reserved: tuple[str, ...], where: str, complete: bool
) -> dict:
    """The `properties` JSON of a put request as {schema field name: value}. Names match the schema's
    fields in camel case (CREATION_TIMESTAMP -> creationTimestamp) or as written; `reserved` fields come
    from the request's own members; `complete`: every non-null field must be given."""
    raw: object = {}
    if text is not None:
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            raise InvalidInputException(f"{where} is not JSON") from None
        if not isinstance(raw, dict):
            raise InvalidInputException(f"{where} must be a JSON object of field values")
    by_compact = {_compact(field.name): field for field in fields if field.name.upper() not in reserved}
    out: dict[str, object] = {}
    for name, value in raw.items():
        field = by_compact.get(_compact(name))
        if field is None:
            known = ", ".join(sorted(f.name for f in by_compact.values())) or "none"
            raise InvalidInputException(
                f"{where}: {name!r} is not a field of the dataset's schema that properties may set "
                f"(fields: {known})"
            )
        out[field.name] = _coerce(value, field, where)
    if complete:
        missing = [f.name for f in by_compact.values() if not f.nullable and f.name not in out]
        if missing:
            raise InvalidInputException(f"{where} lacks {', '.join(missing)}, which the schema requires")
    return out


class EventOperations(ResourceOperations):
    # ---- event trackers -------------------------------------------------------------------------

    def create_event_tracker(self, params: dict, region: str) -> dict:
        group = self._get_active("dataset_group", params["datasetGroupArn"], "datasetGroupArn")
        record = {
            "name": params["name"],
            "eventTrackerArn": make_arn(region, "event-tracker", params["name"]),
            "accountId": ACCOUNT_ID,
            "trackingId": str(uuid.uuid4()),
            "datasetGroupArn": group["datasetGroupArn"],
            "_region": region,
        }
        with self.store.locked():  # one tracker per dataset group: check and create together
            existing = self._in_use_by("event_tracker", "datasetGroupArn", group["datasetGroupArn"])
            if len(existing) >= EVENT_TRACKERS_PER_DATASET_GROUP:
                raise ResourceAlreadyExistsException(
                    f"Dataset group {group['datasetGroupArn']} already has an event tracker "
                    f"({existing[0]['eventTrackerArn']}); a dataset group has only one."
                )
            self._create("event_tracker", record)
        return {"eventTrackerArn": record["eventTrackerArn"], "trackingId": record["trackingId"]}

    def describe_event_tracker(self, params: dict, region: str) -> dict:
        return self._describe("event_tracker", params["eventTrackerArn"], "eventTrackerArn")

    def list_event_trackers(self, params: dict, region: str) -> dict:
        return self._list_under("event_tracker", region, params, "datasetGroupArn", "dataset-group")

    def delete_event_tracker(self, params: dict, region: str) -> dict:
        arn = params["eventTrackerArn"]
        with self.store.locked():
            self._get("event_tracker", arn, "eventTrackerArn")
            self.store.delete("event_tracker", arn)  # events already recorded stay in the dataset
        return {}

    def _tracker(self, tracking_id: str) -> dict:
        for tracker in self.store.all("event_tracker"):
            if tracker.get("trackingId") == tracking_id:
                if tracker.get("status") != ACTIVE:
                    raise InvalidInputException(
                        f"the event tracker with trackingId {tracking_id} is {tracker.get('status')}; "
                        "use its trackingId once it is ACTIVE"
                    )
                return tracker
        raise InvalidInputException(f"trackingId {tracking_id[:80]!r} belongs to no event tracker")

    # ---- personalize-events ---------------------------------------------------------------------

    def _target_dataset(self, arn: str, dataset_type: str, field: str) -> tuple[dict, list[SchemaField]]:
        dataset = self._get("dataset", arn, field)
        if dataset["datasetType"] != dataset_type:
            raise InvalidInputException(f"{field} {arn} is a {dataset['datasetType']} dataset, not {dataset_type}")
        if dataset.get("status") != ACTIVE:
            raise ResourceInUseException(f"Dataset {arn} is {dataset.get('status')}, not ACTIVE.")
        schema = self.store.get("schema", dataset["schemaArn"])
        return dataset, avro_schemas.parse_avro_schema(schema["schema"])

    def put_events(self, params: dict, region: str) -> dict:
        tracker = self._tracker(params["trackingId"])
        interactions = dataset_arn(tracker["datasetGroupArn"], "Interactions")
        if self.store.get("dataset", interactions) is None:
            raise InvalidInputException(
                f"Dataset group {tracker['datasetGroupArn']} has no Interactions dataset to record events into"
            )
        dataset, fields = self._target_dataset(interactions, "Interactions", "trackingId's dataset")
        lines = []
        for index, event in enumerate(params["eventList"]):
            where = f"eventList[{index}]"
            if not event.get("itemId"):
                raise InvalidInputException(
                    f"{where}.itemId is required: events become rows of the Interactions dataset, whose "
                    "ITEM_ID is required"
                )
            properties = schema_properties(
                event.get("properties"), fields, INTERACTION_MEMBERS, f"{where}.properties", complete=False
            )
            lines.append({
                "u": params.get("userId"),
                "s": params["sessionId"],
                "i": event["itemId"],
                "t": int(event["sentAt"]),
                "e": event["eventType"],
                "v": event.get("eventValue"),
                "p": properties or None,
                **({"id": event["eventId"]} if event.get("eventId") else {}),
            })
        with self.store.locked():  # receive times in file order: a training's mark splits them cleanly
            received = time.time_ns()
            for offset, line in enumerate(lines):
                line["r"] = received + offset
            append_lines(self._dataset_dir(dataset["datasetArn"]) / EVENTS_FILE, lines)
        return {}

    def put_items(self, params: dict, region: str) -> dict:
        return self._put_records(params, "Items", "items", "itemId", "ITEM_ID")

    def put_users(self, params: dict, region: str) -> dict:
        return self._put_records(params, "Users", "users", "userId", "USER_ID")

    def _put_records(self, params: dict, dataset_type: str, key: str, id_member: str, id_field: str) -> dict:
        dataset, fields = self._target_dataset(params["datasetArn"], dataset_type, "datasetArn")
        lines = []
        for index, record in enumerate(params[key]):
            properties = schema_properties(
                record.get("properties"), fields, (id_field,), f"{key}[{index}].properties", complete=True
            )
            lines.append({"id": record[id_member], "p": properties})
        with self.store.locked():
            received = time.time_ns()
            for offset, line in enumerate(lines):
                line["r"] = received + offset
            append_lines(self._dataset_dir(dataset["datasetArn"]) / RECORDS_FILE, lines)
        return {}
