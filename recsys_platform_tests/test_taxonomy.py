import pytest

from recsys_platform.defs.ga4.taxonomy import load_taxonomy, parse_taxonomy


def test_shipped_taxonomy_maps_the_four_ecommerce_events():
    taxonomy = load_taxonomy()
    assert {e.ga4_event: e.event_type for e in taxonomy.events} == {
        "view_item": "view", "add_to_cart": "cart", "add_to_wishlist": "like", "purchase": "purchase"}
    assert taxonomy.by_asset("ga4_item_views").ga4_event == "view_item"


@pytest.mark.parametrize("entry, message", [
    ({"ga4_event": "view item", "asset": "a", "event_type": "view"}, "not a lower-case identifier"),
    ({"ga4_event": "view_item", "asset": "a", "event_type": "view", "event_value": "cost"}, "event_value"),
])
def test_bad_entries_are_refused_with_the_reason(entry, message):
    with pytest.raises(ValueError, match=message):
        parse_taxonomy({"events": [entry]})


def test_duplicate_assets_are_refused():
    entry = {"ga4_event": "view_item", "asset": "a", "event_type": "view"}
    with pytest.raises(ValueError, match="duplicate asset"):
        parse_taxonomy({"events": [entry, {**entry, "ga4_event": "select_item"}]})
