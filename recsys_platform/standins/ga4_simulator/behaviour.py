"""Synthetic shop behaviour with structure a recommender can learn, generated in numpy arrays.

A catalogue with a two-level category tree and Zipf-like popularity; visitors (registered users and
never-registered ones) with a favourite top-level category; sessions that start with `session_start`
and `page_view`, view items (mostly from the favourite category), sometimes add them to the cart or
wishlist, and — for logged-in visitors with a non-empty cart — end in a purchase of the carted items.
About one order in ten is missing from GA4 (tracking blocked) but present in the product DB.
The real-world mess is added on purpose: exact duplicate events, `view_item` without items, events the
platform does not track (scroll, user_engagement, custom events) and malformed item rows.

Export realities that are per session or per visitor are drawn here too (all off in `Behaviour()`;
`SimulationConfig` turns them on): consent-denied sessions (cookieless pings), sessions in the shop's
Android/iOS app (visitors on a phone or tablet may have it; their app instance id is another pseudo id,
their login the same user id), query strings on page URLs (utm/gclid on campaign landings, and a share
carrying personal data: an email, a token or an order id), referrers, and a few registered users whose
GA4 `user_id` is their login email instead of the shop's id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys_platform.standins.ga4_simulator.ga4_rows import (
    CHANNELS,
    DEVICE_PROFILES,
    GEO_PROFILES,
    PAGE_URL_PREFIX,
    PROFILE_APP_PLATFORM,
    WEB,
    EventBatch,
    page_locations,
)

CATEGORY_TREE = {
    "Apparel": ("Tops", "Bottoms", "Outerwear", "Dresses", "Knitwear"),
    "Shoes": ("Sneakers", "Boots", "Sandals", "Loafers"),
    "Bags": ("Backpacks", "Totes", "Wallets"),
    "Beauty": ("Skincare", "Makeup", "Fragrance", "Haircare"),
    "Home": ("Kitchen", "Bedding", "Lighting", "Storage", "Decor"),
    "Electronics": ("Audio", "Chargers", "Wearables"),
    "Sports": ("Running", "Yoga", "Cycling", "Camping"),
    "Kids": ("Toys", "Baby Clothes", "Books"),
}
L1_NAMES = tuple(CATEGORY_TREE)
L2_NAMES = tuple(name for children in CATEGORY_TREE.values() for name in children)
L2_PARENT = np.array([i for i, children in enumerate(CATEGORY_TREE.values()) for _ in children])
# Typical price (USD) per top-level category; item prices scatter log-normally around it.
L1_TYPICAL_PRICE = np.array([45.0, 80.0, 60.0, 30.0, 35.0, 70.0, 55.0, 25.0])

TRACKED_EVENTS = ("view_item", "add_to_cart", "add_to_wishlist", "purchase")
# Events the platform does not track; custom ones included, as shops send them.
NOISE_EVENTS = ("scroll", "user_engagement", "view_search_results", "size_guide_open", "chat_open")
NOISE_WEIGHTS = np.array([0.45, 0.35, 0.1, 0.05, 0.05])
EVENT_NAMES = ("session_start", "page_view") + TRACKED_EVENTS + NOISE_EVENTS
_CODE = {name: code for code, name in enumerate(EVENT_NAMES)}
_PURCHASE_SUB_ORDER = 1 << 30
# Per channel (CHANNELS order): the landing page's query string and the referrer of the landing page.
CHANNEL_LANDING_QUERY = (None, None, "utm_source=newsletter&utm_medium=email&utm_campaign=weekly_digest",
                         "gclid", None)
CHANNEL_REFERRER = ("https://www.google.com/", None, None, "https://www.google.com/", "https://www.instagram.com/")
_FIRST_NAMES = ("minji", "jiho", "seoyeon", "haruto", "emma", "liam", "yuna", "noah", "sora", "daniel")
_LAST_NAMES = ("kim", "lee", "park", "choi", "jung", "kang", "tanaka", "smith", "cho", "yoon")
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")


@dataclass(frozen=True)
class Behaviour:
    """Probabilities of the generated behaviour; the defaults give a plausible small shop."""

    favourite_category_share: float = 0.75  # views from the visitor's favourite category
    popularity_exponent: float = 1.0  # Zipf exponent of item popularity
    anonymous_visitor_share: float = 0.3  # visitors that never register
    login_share: float = 0.7  # sessions of registered users that are logged in
    mean_views_per_session: float = 4.0
    cart_share: float = 0.12  # views followed by add_to_cart
    wishlist_share: float = 0.04
    noise_share: float = 0.5  # views followed by an untracked event
    purchase_share: float = 0.45  # logged-in sessions with a cart that buy
    untracked_order_share: float = 0.1  # orders in the DB without a GA4 purchase
    cancelled_order_share: float = 0.04
    duplicate_share: float = 0.01  # exact duplicate events
    view_without_items_share: float = 0.01
    malformed_item_share: float = 0.005  # item rows with NULL / '(not set)' item_id or NULL price
    # Export realities (see the module docstring); SimulationConfig sets them.
    consent_denied_share: float = 0.0  # sessions whose visitor denied analytics storage
    app_session_share: float = 0.0  # sessions of app-capable visitors that happen in the app
    pii_url_share: float = 0.0  # web events whose page URL carries an email, a token or an order id
    email_user_id_share: float = 0.0  # registered users whose GA4 user_id is their login email


@dataclass(frozen=True)
class Catalog:
    item_id: pa.Array  # string
    item_name: pa.Array
    category_l1: np.ndarray  # index into L1_NAMES
    category_l2: np.ndarray  # index into L2_NAMES
    price: np.ndarray
    is_available: np.ndarray
    created_at_us: np.ndarray
    global_cdf: np.ndarray  # popularity CDF over all items
    by_l1_items: np.ndarray  # item indices sorted by category_l1
    by_l1_cdf: np.ndarray  # block CDF: category c's items span (c, c + 1]

    def __len__(self) -> int:
        return len(self.price)

    def sample(self, rng: np.random.Generator, favourite_l1: np.ndarray, share: float) -> np.ndarray:
        """One item per entry: from `favourite_l1` with probability `share`, else from the whole shop."""
        n = len(favourite_l1)
        from_favourite = rng.random(n) < share
        anywhere = np.minimum(np.searchsorted(self.global_cdf, rng.random(n), side="right"), len(self) - 1)
        # Blocks are normalised to (c, c + 1], so c + u lands inside category c's block.
        position = np.searchsorted(self.by_l1_cdf, favourite_l1 + rng.random(n), side="right")
        favourite = self.by_l1_items[np.minimum(position, len(self) - 1)]
        return np.where(from_favourite, favourite, anywhere)


@dataclass(frozen=True)
class Visitors:
    """Visitors 0..registered-1 are registered users (product DB); the rest never register."""

    registered: int
    user_id: pa.Array  # string, null for never-registered visitors
    pseudo_id: pa.Array
    favourite_l1: np.ndarray
    activity_cdf: np.ndarray
    profile_index: np.ndarray
    first_channel: np.ndarray
    first_touch_us: np.ndarray
    user_created_at_us: np.ndarray  # for registered users
    email: pa.Array  # every visitor's (newsletter or login) email address
    ga4_user_id: pa.Array  # what the site sends as GA4 user_id: user_id, or for a few the login email
    app_platform: np.ndarray  # ANDROID, IOS, or 0 when the visitor's device runs no app
    app_pseudo_id: pa.Array  # the app instance id (32 hex digits), the visitor's pseudo id in the app

    def __len__(self) -> int:
        return len(self.favourite_l1)


def prefixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pa.array(numbers, pa.int64()).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def decimal_ids(numbers: np.ndarray) -> pa.Array:
    """Ids as a MySQL shop's INT64 keys arrive in GA4: their decimal strings ('123')."""
    return pa.array(numbers, pa.int64()).cast(pa.string())


def hex_tokens(rng: np.random.Generator, count: int) -> pa.Array:
    """`count` random 32-hex-digit strings (app instance ids, reset tokens)."""
    high, low = (np.char.mod("%016x", rng.integers(0, 1 << 62, count)) for _ in range(2))
    return pa.array(np.char.add(high, low).astype(object), pa.string())


def build_catalog(items: int, seed: int, epoch_us: int, behaviour: Behaviour,
                  numeric_ids: bool = False) -> Catalog:
    if items < len(L1_NAMES):
        raise ValueError(f"the catalogue needs at least {len(L1_NAMES)} items (one per category), got {items}")
    rng = np.random.default_rng([seed, 1])
    l2 = rng.integers(0, len(L2_NAMES), items)
    l2[: len(L1_NAMES)] = [L2_PARENT.tolist().index(c) for c in range(len(L1_NAMES))]  # no empty top category
    l1 = L2_PARENT[l2]
    price = np.round(np.floor(L1_TYPICAL_PRICE[l1] * rng.lognormal(0.0, 0.5, items)) + 0.99, 2)
    rank = rng.permutation(items) + 1
    weight = 1.0 / rank ** behaviour.popularity_exponent
    global_cdf = np.cumsum(weight) / weight.sum()
    by_l1_items = np.argsort(l1, kind="stable")
    block_cdf = np.empty(items)
    for c in range(len(L1_NAMES)):
        members = np.flatnonzero(l1[by_l1_items] == c)
        w = weight[by_l1_items[members]]
        block_cdf[members] = c + np.cumsum(w) / w.sum()
    numbers = np.arange(1, items + 1)
    item_id = decimal_ids(numbers) if numeric_ids else prefixed_ids("I", numbers, 6)
    names = pc.binary_join_element_wise(pa.array(np.array(L2_NAMES, dtype=object)[l2], pa.string()),
                                        pa.array(numbers).cast(pa.string()), " No. ")
    year_us = 365 * 86_400 * 1_000_000
    return Catalog(
        item_id=item_id,
        item_name=names,
        category_l1=l1,
        category_l2=l2,
        price=price,
        is_available=rng.random(items) >= 0.05,
        created_at_us=epoch_us - rng.integers(86_400_000_000, 2 * year_us, items),
        global_cdf=global_cdf,
        by_l1_items=by_l1_items,
        by_l1_cdf=block_cdf,
    )


def build_visitors(users: int, seed: int, epoch_us: int, behaviour: Behaviour,
                   numeric_ids: bool = False) -> Visitors:
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    rng = np.random.default_rng([seed, 2])
    anonymous = int(round(users * behaviour.anonymous_visitor_share / (1 - behaviour.anonymous_visitor_share)))
    total = users + anonymous
    activity = rng.lognormal(0.0, 1.0, total)  # a few very active visitors, many occasional ones
    first_touch = epoch_us - rng.integers(3_600_000_000, 400 * 86_400_000_000, total)
    random_part = rng.integers(100_000_000, 2_000_000_000, total)
    pseudo = pc.binary_join_element_wise(
        pa.array(random_part).cast(pa.string()), pa.array(first_touch // 1_000_000).cast(pa.string()), "."
    )
    numbers = np.arange(1, total + 1)
    user_id = decimal_ids(numbers) if numeric_ids else prefixed_ids("U", numbers, 7)
    user_id = pc.if_else(pa.array(np.arange(total) < users), user_id, pa.scalar(None, pa.string()))
    profile_index = rng.integers(0, len(DEVICE_PROFILES) * len(GEO_PROFILES), total)
    # Export realities come from a stream of their own, so turning them on changes no behaviour above.
    extra = np.random.default_rng([seed, 5])
    names = pc.binary_join_element_wise(
        pa.array(np.array(_FIRST_NAMES, dtype=object)[extra.integers(0, len(_FIRST_NAMES), total)], pa.string()),
        pa.array(np.array(_LAST_NAMES, dtype=object)[extra.integers(0, len(_LAST_NAMES), total)], pa.string()),
        ".")
    local_parts = pc.binary_join_element_wise(names, pa.array(numbers).cast(pa.string()), "")
    email = pc.binary_join_element_wise(
        local_parts,
        pa.array(np.array(_EMAIL_DOMAINS, dtype=object)[extra.integers(0, len(_EMAIL_DOMAINS), total)], pa.string()),
        "@")
    login_email = pa.array((np.arange(total) < users) & (extra.random(total) < behaviour.email_user_id_share))
    return Visitors(
        registered=users,
        user_id=user_id,
        pseudo_id=pseudo,
        favourite_l1=rng.integers(0, len(L1_NAMES), total),
        activity_cdf=np.cumsum(activity) / activity.sum(),
        profile_index=profile_index,
        first_channel=rng.integers(0, len(CHANNELS), total),
        first_touch_us=first_touch,
        user_created_at_us=first_touch[:users] + rng.integers(0, 3_600_000_000, users),
        email=email,
        ga4_user_id=pc.if_else(login_email, email, user_id),
        app_platform=PROFILE_APP_PLATFORM[profile_index % len(DEVICE_PROFILES)],
        app_pseudo_id=hex_tokens(extra, total),
    )


@dataclass
class DayOrders:
    """Orders placed in a generated day, as the product DB records them (including untracked ones)."""

    order_id: pa.Array
    user_id: pa.Array
    ordered_at_us: np.ndarray
    status: pa.Array
    line_order_id: pa.Array
    line_item_id: pa.Array
    line_quantity: np.ndarray
    line_unit_price: np.ndarray

    @property
    def count(self) -> int:
        return len(self.order_id)

    def tables(self) -> tuple[pa.Table, pa.Table]:
        """(orders, order_items) rows in the product DB's columns; timestamps are naive UTC."""
        orders = pa.table({
            "order_id": self.order_id,
            "user_id": self.user_id,
            "ordered_at": pa.array(self.ordered_at_us, pa.timestamp("us")),
            "status": self.status,
        })
        lines = pa.table({
            "order_id": self.line_order_id,
            "item_id": self.line_item_id,
            "quantity": pa.array(self.line_quantity, pa.int64()),
            "unit_price": pa.array(self.line_unit_price, pa.float64()),
        })
        return orders, lines


@dataclass
class _Sessions:
    visitor: np.ndarray
    logged_in: np.ndarray
    start_us: np.ndarray
    channel: np.ndarray
    number: np.ndarray
    purchases: np.ndarray  # the session ends in an order
    tracked: np.ndarray  # ... and GA4 saw it
    consent_denied: np.ndarray  # the visitor denied analytics storage: cookieless pings
    in_app: np.ndarray  # the session happens in the shop's app
    # views, grouped by session in order
    view_offsets: np.ndarray
    view_item: np.ndarray
    view_cart: np.ndarray
    view_wish: np.ndarray
    view_noise: np.ndarray  # -1 or index into NOISE_EVENTS


def generate_day(
    day_label: str,
    day_start_us: int,
    day_seconds: int,
    target_events: int,
    catalog: Catalog,
    visitors: Visitors,
    session_counter: np.ndarray,
    rng: np.random.Generator,
    behaviour: Behaviour,
    chunk_events: int = 100_000,
    numeric_ids: bool = False,
) -> Iterator[tuple[EventBatch, DayOrders]]:
    """Yield the day's events in chunks of about `chunk_events`, each with the orders it placed.

    `session_counter` holds each visitor's sessions so far; it is advanced (ga_session_number).
    `numeric_ids` gives orders INT64-style ids (their decimal strings), as a MySQL shop has.
    """
    sessions = _draw_sessions(day_start_us, day_seconds, target_events, catalog, visitors, session_counter, rng,
                              behaviour)
    # Chunks of whole sessions, about `chunk_events` events each.
    chunk_of_session = (np.cumsum(_events_per_session(sessions)) - 1) // chunk_events
    boundaries = np.r_[0, np.flatnonzero(np.diff(chunk_of_session)) + 1, len(chunk_of_session)]
    order_number = 0
    for first, last in zip(boundaries[:-1], boundaries[1:]):
        batch, orders = _build_chunk(day_label, sessions, first, last, order_number, catalog, visitors, rng,
                                     behaviour, numeric_ids)
        order_number += orders.count
        yield batch, orders


def _draw_sessions(day_start_us, day_seconds, target_events, catalog, visitors, session_counter, rng,
                   behaviour):
    mean_events = 2 + behaviour.mean_views_per_session * (
        1 + behaviour.cart_share + behaviour.wishlist_share + behaviour.noise_share
    )
    n = int(target_events / mean_events * 1.3) + 8
    visitor = np.minimum(np.searchsorted(visitors.activity_cdf, rng.random(n), side="right"),
                         len(visitors) - 1)
    registered = visitor < visitors.registered
    logged_in = registered & (rng.random(n) < behaviour.login_share)
    # Sessions end well before midnight, so every event belongs to this day's shard.
    start_us = day_start_us + rng.integers(0, max(day_seconds - 3 * 3600, 1) * 1_000_000, n)
    channel = rng.integers(0, len(CHANNELS), n)
    views = np.minimum(rng.geometric(1.0 / behaviour.mean_views_per_session, n), 30)
    view_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(views, out=view_offsets[1:])
    v = int(view_offsets[-1])
    view_session = np.repeat(np.arange(n), views)
    favourite = visitors.favourite_l1[visitor][view_session]
    view_item = catalog.sample(rng, favourite, behaviour.favourite_category_share)
    view_cart = rng.random(v) < behaviour.cart_share
    view_wish = rng.random(v) < behaviour.wishlist_share
    view_noise = np.where(rng.random(v) < behaviour.noise_share,
                          rng.choice(len(NOISE_EVENTS), v, p=NOISE_WEIGHTS), -1)
    has_cart = np.bincount(view_session, weights=view_cart, minlength=n) > 0
    purchases = logged_in & has_cart & (rng.random(n) < behaviour.purchase_share)
    tracked = purchases & (rng.random(n) >= behaviour.untracked_order_share)
    consent_denied = rng.random(n) < behaviour.consent_denied_share
    in_app = (visitors.app_platform[visitor] != WEB) & (rng.random(n) < behaviour.app_session_share)
    sessions = _Sessions(visitor, logged_in, start_us, channel, np.zeros(n, np.int64), purchases, tracked,
                         consent_denied, in_app, view_offsets, view_item, view_cart, view_wish, view_noise)
    # Keep whole sessions up to the day's target, then put them in time order.
    counts = _events_per_session(sessions)
    keep = int(np.searchsorted(np.cumsum(counts), target_events, side="right"))
    keep = max(keep, 1)
    kept = np.argsort(start_us[:keep], kind="stable")
    sessions = _select_sessions(sessions, kept)
    # ga_session_number: the visitor's sessions so far, counting today's in time order.
    order_within_visitor = _rank_within_groups(sessions.visitor)
    sessions.number = session_counter[sessions.visitor] + order_within_visitor + 1
    np.add.at(session_counter, sessions.visitor, 1)
    return sessions


def _rank_within_groups(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... for successive occurrences of each value, in array order."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(groups)]))
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - run_start
    return rank


def _select_sessions(s: _Sessions, chosen: np.ndarray) -> _Sessions:
    starts, ends = s.view_offsets[chosen], s.view_offsets[chosen + 1]
    lengths = ends - starts
    view_index = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(lengths.sum())
    offsets = np.zeros(len(chosen) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return _Sessions(
        s.visitor[chosen], s.logged_in[chosen], s.start_us[chosen], s.channel[chosen], s.number[chosen],
        s.purchases[chosen], s.tracked[chosen], s.consent_denied[chosen], s.in_app[chosen], offsets,
        s.view_item[view_index], s.view_cart[view_index], s.view_wish[view_index], s.view_noise[view_index],
    )


def _events_per_session(s: _Sessions) -> np.ndarray:
    n = len(s.visitor)
    view_session = np.repeat(np.arange(n), np.diff(s.view_offsets))
    per_view = 1 + s.view_cart.astype(np.int64) + s.view_wish + (s.view_noise >= 0)
    return 2 + np.bincount(view_session, weights=per_view, minlength=n).astype(np.int64) + s.tracked


def _build_chunk(day_label, sessions_all, first, last, order_number, catalog, visitors, rng, behaviour,
                 numeric_ids=False):
    s = _select_sessions(sessions_all, np.arange(first, last))
    n_sessions = len(s.visitor)
    view_counts = np.diff(s.view_offsets)
    view_session = np.repeat(np.arange(n_sessions), view_counts)
    view_position = np.arange(len(view_session)) - s.view_offsets[view_session]

    # --- orders: the carted items of purchasing sessions, one line per distinct item ---
    buyer_view = s.view_cart & s.purchases[view_session]
    line_keys = np.unique(view_session[buyer_view].astype(np.int64) * len(catalog) + s.view_item[buyer_view])
    line_session, line_item = line_keys // len(catalog), line_keys % len(catalog)
    line_quantity = rng.choice([1, 2, 3], len(line_keys), p=[0.85, 0.12, 0.03]).astype(np.int64)
    line_price = catalog.price[line_item]
    buying_sessions = np.flatnonzero(s.purchases)
    order_of_session = np.full(n_sessions, -1, dtype=np.int64)
    order_of_session[buying_sessions] = np.arange(len(buying_sessions))
    order_numbers = order_number + np.arange(1, len(buying_sessions) + 1)
    order_ids = (decimal_ids(int(day_label) * 1_000_000 + order_numbers) if numeric_ids
                 else prefixed_ids(f"O{day_label}-", order_numbers, 6))
    subtotal = np.bincount(order_of_session[line_session], weights=line_price * line_quantity,
                           minlength=len(buying_sessions))
    shipping = np.where(subtotal >= 50.0, 0.0, 3.0)

    # --- events, as (session, sub-order) so one sort puts each session's events in sequence ---
    parts_session, parts_sub, parts_code, parts_view = [], [], [], []

    def add(session, sub, code, view):
        parts_session.append(session)
        parts_sub.append(sub)
        parts_code.append(code)
        parts_view.append(view)

    all_sessions = np.arange(n_sessions)
    no_view = np.full(n_sessions, -1)
    add(all_sessions, np.zeros(n_sessions, np.int64), np.full(n_sessions, _CODE["session_start"]), no_view)
    add(all_sessions, np.ones(n_sessions, np.int64), np.full(n_sessions, _CODE["page_view"]), no_view)
    views = np.arange(len(view_session))
    base_sub = 2 + 4 * view_position
    add(view_session, base_sub, np.full(len(views), _CODE["view_item"]), views)
    carts = views[s.view_cart]
    add(view_session[carts], base_sub[carts] + 1, np.full(len(carts), _CODE["add_to_cart"]), carts)
    wishes = views[s.view_wish]
    add(view_session[wishes], base_sub[wishes] + 2, np.full(len(wishes), _CODE["add_to_wishlist"]), wishes)
    noisy = views[s.view_noise >= 0]
    add(view_session[noisy], base_sub[noisy] + 3, len(EVENT_NAMES) - len(NOISE_EVENTS) + s.view_noise[noisy],
        noisy)
    tracked = np.flatnonzero(s.tracked)
    add(tracked, np.full(len(tracked), _PURCHASE_SUB_ORDER), np.full(len(tracked), _CODE["purchase"]),
        np.full(len(tracked), -1))
    ev_session = np.concatenate(parts_session)
    ev_sub = np.concatenate(parts_sub)
    order = np.lexsort((ev_sub, ev_session))
    ev_session, ev_code = ev_session[order], np.concatenate(parts_code)[order]
    ev_view = np.concatenate(parts_view)[order]
    n = len(ev_session)
    session_first_event = np.r_[0, np.flatnonzero(np.diff(ev_session)) + 1]
    position = np.arange(n) - np.repeat(session_first_event, np.diff(np.r_[session_first_event, n]))

    gaps = rng.exponential(20_000_000, n).astype(np.int64) + 1
    gaps[session_first_event] = 0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[session_first_event], np.diff(np.r_[session_first_event, n]))
    timestamps = s.start_us[ev_session] + elapsed

    # --- item rows: one per view/cart/wishlist event (some views arrive without), the lines of a purchase ---
    is_item_event = np.isin(ev_code, [_CODE["view_item"], _CODE["add_to_cart"], _CODE["add_to_wishlist"]])
    empty_view = (ev_code == _CODE["view_item"]) & (rng.random(n) < behaviour.view_without_items_share)
    single = np.flatnonzero(is_item_event & ~empty_view)
    purchase_events = np.flatnonzero(ev_code == _CODE["purchase"])
    event_of_purchase_session = np.full(n_sessions, -1, dtype=np.int64)
    event_of_purchase_session[ev_session[purchase_events]] = purchase_events
    line_event = event_of_purchase_session[line_session]
    ga4_lines = line_event >= 0
    row_event = np.concatenate([single, line_event[ga4_lines]])
    row_item = np.concatenate([s.view_item[ev_view[single]], line_item[ga4_lines]])
    row_quantity = np.concatenate([np.ones(len(single), np.int64), line_quantity[ga4_lines]])
    row_order = np.argsort(row_event, kind="stable")
    row_event, row_item, row_quantity = row_event[row_order], row_item[row_order], row_quantity[row_order]
    item_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_event, minlength=n), out=item_offsets[1:])
    item_id, item_price = _malformed(catalog.item_id.take(pa.array(row_item)), catalog.price[row_item], rng,
                                     behaviour.malformed_item_share)

    visitor = s.visitor[ev_session]
    logged_in = s.logged_in[ev_session]
    codes = pa.array(ev_code)
    event_name = pa.array(EVENT_NAMES).take(codes)
    has_item_page = ev_view >= 0
    is_purchase_event = ev_code == _CODE["purchase"]
    product_paths = pc.binary_join_element_wise(
        "/products/", catalog.item_id.take(pa.array(np.where(has_item_page, s.view_item[ev_view], 0))), "")
    page_path = pc.if_else(pa.array(has_item_page), product_paths,
                           pc.if_else(pa.array(is_purchase_event), "/checkout/complete", "/"))
    transaction_id = pa.concat_arrays([order_ids, pa.nulls(1, pa.string())]).take(
        pa.array(np.where(is_purchase_event, order_of_session[ev_session], len(buying_sessions))))
    shipping_by_session = np.zeros(n_sessions)
    shipping_by_session[buying_sessions] = shipping
    in_app = s.in_app[ev_session]
    stream_index = np.where(in_app, visitors.app_platform[visitor], WEB)
    # URL draws use a child stream (one draw of `rng` whatever they need), so their share changes nothing else.
    url_rng = np.random.default_rng(rng.integers(0, 1 << 62))
    session_order = order_of_session[ev_session]
    page_query = _page_queries(
        position, s.channel[ev_session], ~in_app,
        order_ids.take(pa.array(np.maximum(session_order, 0), mask=session_order < 0)) if len(order_ids)
        else pa.nulls(n, pa.string()),
        visitors.email.take(pa.array(visitor)), url_rng, behaviour.pii_url_share)
    page_referrer = _page_referrers(page_path, page_query, ev_session, ev_view, ev_code, position,
                                    session_first_event, s.channel[ev_session], view_session, view_position)
    batch_page_id, batch_ordering_id, batch_event_index = _batch_fields(
        ev_session, ev_view, is_purchase_event, view_position, view_counts, s.start_us)
    batch = EventBatch(
        event_date=day_label,
        event_name=event_name,
        event_timestamp=timestamps,
        user_id=visitors.ga4_user_id.take(pa.array(visitor, mask=~logged_in)),
        user_pseudo_id=pc.if_else(pa.array(in_app), visitors.app_pseudo_id.take(pa.array(visitor)),
                                  visitors.pseudo_id.take(pa.array(visitor))),
        user_first_touch_timestamp=visitors.first_touch_us[visitor],
        session_id=s.start_us[ev_session] // 1_000_000,
        session_number=s.number[ev_session],
        engagement_time_msec=rng.integers(100, 30_000, n),
        page_path=page_path,
        bundle_sequence_id=rng.integers(1, 1 << 40, n),
        server_timestamp_offset=rng.integers(50_000, 3_000_000, n),
        profile_index=visitors.profile_index[visitor],
        first_channel_index=visitors.first_channel[visitor],
        channel_index=s.channel[ev_session],
        batch_event_index=batch_event_index,
        batch_page_id=batch_page_id,
        batch_ordering_id=batch_ordering_id,
        transaction_id=transaction_id,
        shipping_value=np.where(is_purchase_event, shipping_by_session[ev_session], 0.0),
        item_offsets=item_offsets,
        item_id=item_id,
        item_name=catalog.item_name.take(pa.array(row_item)),
        item_category=pa.array(np.array(L1_NAMES, dtype=object)[catalog.category_l1[row_item]], pa.string()),
        item_category2=pa.array(np.array(L2_NAMES, dtype=object)[catalog.category_l2[row_item]], pa.string()),
        item_price=item_price,
        item_quantity=row_quantity,
        stream_index=stream_index,
        consent_denied=s.consent_denied[ev_session],
        page_query=page_query,
        page_referrer=page_referrer,
    )

    status = np.where(rng.random(len(buying_sessions)) < behaviour.cancelled_order_share, "cancelled", "paid")
    order_end = np.r_[session_first_event[1:], n] - 1  # orders are placed at the session's last event
    orders = DayOrders(
        order_id=order_ids,
        user_id=visitors.user_id.take(pa.array(s.visitor[buying_sessions])),
        # an untracked order is placed a second after the session's last tracked event
        ordered_at_us=timestamps[order_end[buying_sessions]]
        + np.where(s.tracked[buying_sessions], 0, 1_000_000),
        status=pa.array(status.astype(object), pa.string()),
        line_order_id=order_ids.take(pa.array(order_of_session[line_session])),
        line_item_id=catalog.item_id.take(pa.array(line_item)),
        line_quantity=line_quantity,
        line_unit_price=line_price,
    )
    return batch, orders


def _batch_fields(ev_session, ev_view, is_purchase_event, view_position, view_counts, start_us):
    """GA4's batch fields ("[GA4] BigQuery Export schema"): `batch_page_id` numbers the pages of an
    engagement in increasing order (here the session's start in ms plus the page's index: landing page 0,
    product page of view k at k + 1, the order confirmation last); `batch_ordering_id` counts the network
    requests sent from a page; `batch_event_index` orders the events inside one request. The landing page
    sends session_start and page_view in one request; every later event on a page is its own request.
    Together with the visitor they identify an event."""
    n = len(ev_session)
    page = np.zeros(n, dtype=np.int64)
    on_view = ev_view >= 0
    page[on_view] = view_position[ev_view[on_view]] + 1
    page[is_purchase_event] = view_counts[ev_session[is_purchase_event]] + 1
    # Events are in (session, page) order: rank each event inside its page.
    new_page = np.r_[True, (ev_session[1:] != ev_session[:-1]) | (page[1:] != page[:-1])]
    page_start = np.maximum.accumulate(np.where(new_page, np.arange(n), 0))
    rank = np.arange(n) - page_start
    landing = page == 0
    return (start_us[ev_session] // 1_000 + page, np.where(landing, 1, rank + 1).astype(np.int64),
            np.where(landing, rank, 0).astype(np.int64))


def _page_queries(position, channel, on_web, order_id, email, rng, pii_share) -> pa.Array:
    """Each web event's query string (null for none): a campaign landing carries its utm parameters or
    Google Ads' gclid; a `pii_share` of web events carries personal data a careless site puts in URLs:
    the visitor's email (sometimes URL-encoded), a password-reset or session token, or the session's
    order id (a token where the session placed no order)."""
    n = len(position)
    landing = on_web & (position == 1)
    campaign = np.array(CHANNEL_LANDING_QUERY, dtype=object)[channel]
    campaign = np.where(landing, campaign, None)
    is_gclid = campaign == "gclid"
    if is_gclid.any():
        campaign[is_gclid] = np.char.add("gclid=Cj0KCQ", np.char.mod("%012x", rng.integers(0, 1 << 46, int(
            is_gclid.sum())))).astype(object)
    query = pa.array(campaign, pa.string())
    planted = np.flatnonzero(on_web & (rng.random(n) < pii_share))
    if len(planted):
        kind = rng.integers(0, 3, len(planted))
        orders = order_id.take(pa.array(planted))
        kind = np.where((kind == 2) & pc.is_null(orders).to_numpy(zero_copy_only=False), 1, kind)
        emails = email.take(pa.array(planted))
        encoded = rng.random(len(planted)) < 0.5
        emails = pc.if_else(pa.array(encoded), pc.replace_substring(emails, "@", "%40"), emails)
        tokens = pc.binary_join_element_wise(
            pa.array(np.where(rng.random(len(planted)) < 0.5, "token", "reset_token").astype(object), pa.string()),
            hex_tokens(rng, len(planted)), "=")
        values = pc.if_else(pa.array(kind == 0), pc.binary_join_element_wise("email", emails, "="),
                            pc.if_else(pa.array(kind == 2), pc.binary_join_element_wise("order_id", orders, "="),
                                       tokens))
        slot = np.full(n, -1)
        slot[planted] = np.arange(len(planted))
        personal = values.take(pa.array(np.maximum(slot, 0), mask=slot < 0))
        # Not binary_join_element_wise(null_handling="skip"): in pyarrow 26 it drops rows where all are null.
        query = pc.coalesce(pc.binary_join_element_wise(query, personal, "&"), query, personal)
    return query


def _page_referrers(page_path, page_query, ev_session, ev_view, ev_code, position, session_first_event,
                    channel, view_session, view_position) -> pa.Array:
    """`page_referrer` of each event: the page before the event's page. The landing page's referrer is
    the channel's site (none for direct and email traffic); a product page's is the previous product
    page, or the landing page for the session's first view; the order confirmation's is the checkout."""
    n = len(ev_session)
    location = page_locations(page_path, page_query)
    is_view_item = ev_code == _CODE["view_item"]
    view_event = np.full(len(view_session), -1, dtype=np.int64)
    view_event[ev_view[is_view_item]] = np.flatnonzero(is_view_item)
    source = np.full(n, -1, dtype=np.int64)
    on_page = np.flatnonzero(ev_view >= 0)
    views = ev_view[on_page]
    landing_event = session_first_event + 1  # every session starts: session_start, page_view (landing)
    source[on_page] = np.where(view_position[views] > 0, view_event[np.maximum(views - 1, 0)],
                               landing_event[ev_session[on_page]])
    internal = location.take(pa.array(np.maximum(source, 0), mask=source < 0))
    external = pa.array(np.array(CHANNEL_REFERRER, dtype=object)[channel], pa.string())
    referrer = pc.if_else(pa.array(position <= 1), external, internal)
    return pc.if_else(pa.array(ev_code == _CODE["purchase"]), f"{PAGE_URL_PREFIX}/checkout", referrer)


def _malformed(item_id: pa.Array, price: np.ndarray, rng: np.random.Generator, share: float):
    """Spoil a small share of GA4 item rows the way broken tags do (the product DB keeps the truth)."""
    kind = np.where(rng.random(len(price)) < share, rng.integers(0, 3, len(price)), -1)
    item_id = pc.if_else(pa.array(kind == 0), pa.scalar(None, pa.string()), item_id)
    item_id = pc.if_else(pa.array(kind == 1), "(not set)", item_id)
    return item_id, pa.array(price, pa.float64(), mask=kind == 2)


def duplicate_positions(n: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """Row order that repeats about `share` of the rows right after themselves (exact duplicates)."""
    repeated = np.flatnonzero(rng.random(n) < share)
    return np.sort(np.concatenate([np.arange(n), repeated]), kind="stable")
