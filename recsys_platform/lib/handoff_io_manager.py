"""Typed hand-offs between steps: an asset's return value (a dataclass) stored as JSON in the lake.

A downstream asset receives what it needs as a Dagster input of a declared type (a snapshot's URI and
row count, the solution version that was trained), never by looking up another asset's metadata. The
value of each asset partition is one small JSON object, `handoffs/<asset>/<partition>.json`; it is
replaced when the partition is materialized again. pydantic serialises the dataclasses, and the input's
annotation says what to read back.
"""

from __future__ import annotations

from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import TypeAdapter

from recsys_platform.lib.lake import LakeResource

HANDOFF_PREFIX = "handoffs"


class LakeHandoffIOManager(ConfigurableIOManager):
    """Stores each asset partition's value as JSON in the lake (`handoffs/<asset>/<partition>.json`)."""

    lake: LakeResource

    def _key(self, context: InputContext | OutputContext) -> str:
        asset = "/".join(context.asset_key.path)
        partition = context.asset_partition_key if context.has_asset_partitions else "all"
        return f"{HANDOFF_PREFIX}/{asset}/{partition}.json"

    def handle_output(self, context: OutputContext, obj) -> None:
        if obj is None:
            return
        self.lake.replace_text(self._key(context), TypeAdapter(type(obj)).dump_json(obj, indent=1).decode())

    def load_input(self, context: InputContext):
        key = self._key(context)
        try:
            text = self.lake.read_text(key)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{context.asset_key.to_user_string()} has no stored value for partition "
                f"{context.asset_partition_key}: materialize it for that day first ({self.lake.uri(key)})"
            ) from None
        return TypeAdapter(context.dagster_type.typing_type).validate_json(text)
