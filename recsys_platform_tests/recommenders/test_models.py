import numpy as np
import pytest

from recsys_platform.modelling.recommenders.base import InteractionLog
from recsys_platform.modelling.recommenders.registry import create_recommender
from recsys_platform.modelling.recommenders.sequential import SequentialRecommender

LEARNED = [
    "item-knn", "ease", "als", "ease-or-als", "aws-user-personalization-v2", "aws-user-personalization"
]
ALS_FOR_TESTS = {"factors": "8", "iterations": "10", "regularization": "0.01"}


def make_log(rows):
    users, items, times, events = zip(*rows)
    return InteractionLog(np.array(users, dtype=object), np.array(items, dtype=object),
                          np.array(times, dtype=np.int64), np.array(events, dtype=object))


def two_communities(n_users=40):
    """Users 0..n/2 use items a0..a5, the others b0..b5; b-items are more popular overall."""
    rows, t = [], 0
    for u in range(n_users):
        group, count = ("a", 4) if u < n_users // 2 else ("b", 6)
        for k in np.random.default_rng(u).permutation(6)[:count]:
            t += 1
            rows.append((f"user{u}", f"{group}{k}", t, "view"))
    rows += [("probe", "a0", t + 1, "view"), ("probe", "a1", t + 2, "view")]
    return make_log(rows)


def items_of(recommendations):
    return [item for item, _ in recommendations]


@pytest.mark.parametrize("recipe", LEARNED)
def test_learned_models_find_the_users_community(recipe):
    model = create_recommender(recipe, {**ALS_FOR_TESTS, "exclude_seen": "true"}).fit(two_communities())
    top = items_of(model.recommend("probe", 3))
    assert set(top) <= {"a2", "a3", "a4", "a5"}, top


def test_popularity_ignores_the_user():
    model = create_recommender("aws-popularity-count").fit(two_communities())
    assert all(item.startswith("b") for item in items_of(model.recommend("probe", 4)))


@pytest.mark.parametrize("recipe", LEARNED + ["recent-items"])
def test_unknown_user_gets_popularity_and_exclusions_hold(recipe):
    log = two_communities()
    model = create_recommender(recipe, ALS_FOR_TESTS).fit(log)
    popular = items_of(create_recommender("aws-popularity-count").fit(log).recommend("x", 5))
    assert items_of(model.recommend("stranger", 5)) == popular
    assert popular[0] not in items_of(model.recommend("stranger", 5, exclude=[popular[0]]))
    assert "a0" not in items_of(model.recommend("probe", 25, exclude=["a0"]))
    assert len(model.recommend("probe", 25)) == 12  # the whole catalogue, filled with popular items


@pytest.mark.parametrize("recipe", LEARNED + ["recent-items"])
def test_models_are_deterministic(recipe):
    log = two_communities()
    first = create_recommender(recipe, ALS_FOR_TESTS).fit(log)
    second = create_recommender(recipe, ALS_FOR_TESTS).fit(log)
    for user in ["probe", "user3", "user30"]:
        assert first.recommend(user, 8) == second.recommend(user, 8)


def test_exclude_seen_hyperparameter():
    log = two_communities()
    keep = create_recommender("item-knn").fit(log)
    hide = create_recommender("item-knn", {"exclude_seen": "true"}).fit(log)
    assert {"a0", "a1"} & set(items_of(keep.recommend("probe", 6)))
    assert not {"a0", "a1"} & set(items_of(hide.recommend("probe", 6)))


def test_recent_items_ranks_own_items_newest_first():
    log = make_log([
        ("u", "x", 1, "view"), ("u", "y", 2, "view"), ("u", "x", 3, "view"), ("u", "z", 4, "view"),
        ("v", "w", 1, "view"),
    ])
    model = create_recommender("recent-items").fit(log)
    assert items_of(model.recommend("u", 3)) == ["z", "x", "y"]


def transitions_log():
    """Many users go p -> r and q -> s; the probes saw p and q in opposite orders."""
    rows, t = [], 0
    for u in range(30):
        first, second = ("p", "r") if u % 2 else ("q", "s")
        rows += [(f"u{u}", first, t + 1, "view"), (f"u{u}", second, t + 2, "view")]
        t += 2
    rows += [("p_last", "q", t + 1, "view"), ("p_last", "p", t + 2, "view"),
             ("q_last", "p", t + 1, "view"), ("q_last", "q", t + 2, "view")]
    return make_log(rows)


def test_sequential_model_uses_order_not_only_the_bag():
    model = create_recommender("aws-user-personalization-v2", {"exclude_seen": "true"}).fit(transitions_log())
    assert items_of(model.recommend("p_last", 1)) == ["r"]
    assert items_of(model.recommend("q_last", 1)) == ["s"]
    # a bag-of-items model cannot tell the two users apart
    bag = create_recommender("ease", {"exclude_seen": "true", "min_item_users": "1"}).fit(transitions_log())
    assert items_of(bag.recommend("p_last", 2)) == items_of(bag.recommend("q_last", 2))


def test_sequential_model_ranks_the_most_recent_own_item_first():
    log = two_communities()
    model = create_recommender("aws-user-personalization-v2").fit(log)
    assert items_of(model.recommend("probe", 1)) == ["a1"]


def test_switches_to_als_above_ease_max_items():
    log = two_communities()
    auto = create_recommender("ease-or-als", {**ALS_FOR_TESTS, "ease_max_items": "5"}).fit(log)
    assert type(auto.model).__name__ == "ALSRecommender"
    assert type(create_recommender("ease-or-als").fit(log).model).__name__ == "EaseRecommender"
    sequential = create_recommender("aws-user-personalization-v2", {**ALS_FOR_TESTS, "ease_max_items": "5"})
    assert isinstance(sequential, SequentialRecommender)
    assert sequential.fit(log).similarity_model == "als"
    with pytest.raises(ValueError, match="ease_max_items"):
        create_recommender("ease", {"ease_max_items": "5"}).fit(log)


def test_event_weights_follow_events_config():
    rows = [(f"u{i}", "viewed", i, "view") for i in range(5)]
    rows += [(f"u{i}", "bought", i, "purchase") for i in range(2)]
    log = make_log(rows)
    assert items_of(create_recommender("aws-popularity-count").fit(log).recommend("x", 1)) == ["viewed"]
    popular_purchases = create_recommender("aws-popularity-count", event_weights={"purchase": 1.0}).fit(log)
    assert popular_purchases.recommend("x", 5) == [("bought", 2.0)]
    weighted = create_recommender("ease-or-als", event_weights={"purchase": 1.0, "view": 0.1}).fit(log)
    assert items_of(weighted.recommend("x", 1)) == ["bought"]
    # listed types only: views are not used at all
    purchases_only = create_recommender("item-knn", event_weights={"purchase": 1.0}).fit(log)
    assert items_of(purchases_only.recommend("x", 5)) == ["bought"]
    with pytest.raises(ValueError, match="within \\[0, 1\\]"):
        create_recommender("item-knn", event_weights={"view": 2.0}).fit(log)


def test_bad_hyperparameters_and_recipes_are_named():
    log = two_communities()
    with pytest.raises(ValueError, match="neighbours='many'"):
        create_recommender("item-knn", {"neighbours": "many"}).fit(log)
    with pytest.raises(ValueError, match="exclude_seen"):
        create_recommender("item-knn", {"exclude_seen": "maybe"})
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        create_recommender("nope")
    assert isinstance(
        create_recommender("arn:aws:personalize:::recipe/aws-user-personalization-v2"), SequentialRecommender
    )
    with pytest.raises(ValueError, match="empty"):
        create_recommender("item-knn").fit(make_log([("u", "i", 1, "view")]).subset(np.array([], dtype=int)))


def test_transition_matrix_counts_within_each_users_sequence_only():
    from recsys_platform.modelling.recommenders.encoding import encode_log
    from recsys_platform.modelling.recommenders.sequential import transition_matrix

    log = make_log([("u", "a", 1, "view"), ("u", "b", 2, "view"), ("u", "c", 3, "view"),
                    ("v", "a", 1, "view"), ("v", "b", 2, "view")])
    encoded = encode_log(log)
    code = {item: index for index, item in enumerate(encoded.items)}
    matrix = transition_matrix(encoded, window=2, neighbours=10).toarray()
    assert matrix[code["a"], code["b"]] == pytest.approx(2 / 2.5)  # a->b twice, a->c once at 2 steps
    assert matrix[code["a"], code["c"]] == pytest.approx(0.5 / 2.5)
    assert matrix[code["c"]].sum() == 0  # u's last item is not followed by v's first
    assert matrix[code["b"], code["a"]] == 0


def test_recent_interactions_fold_into_the_history_for_that_request():
    from recsys_platform.modelling.recommenders.base import RecentInteractions

    log = two_communities()
    model = create_recommender("aws-user-personalization-v2").fit(log)
    later = int(log.timestamps.max()) + 10
    assert items_of(model.recommend("probe", 1)) == ["a1"]
    # the probe (an a-user) now looks at b-items: the newest of them leads, the a-items follow
    switched = RecentInteractions(["b4", "b5", "brand-new-item"], [later, later + 1, later + 2], ["view"] * 3)
    top = items_of(model.recommend("probe", 4, recent=switched))
    assert top[:2] == ["b5", "b4"] and "brand-new-item" not in top  # new items need a retraining
    assert items_of(model.recommend("probe", 1)) == ["a1"]  # for that request only: the model is unchanged
    # a user the model never saw is served from the recent interactions alone
    stranger = items_of(model.recommend("stranger", 3, recent=switched))
    assert stranger[:2] == ["b5", "b4"]
    assert stranger != items_of(model.recommend("stranger", 3))
    # event types the solution does not weigh are not folded in, as in training
    weighted = create_recommender("aws-user-personalization-v2", event_weights={"purchase": 1.0}).fit(
        make_log([(u, i, t, "purchase") for u, i, t, _ in zip(log.user_ids, log.item_ids, log.timestamps, log.event_types)])
    )
    views_only = RecentInteractions(["b4"], [later], ["view"])
    assert weighted.recommend("probe", 5, recent=views_only) == weighted.recommend("probe", 5)
    # popularity is the same list for everyone until it is retrained
    popular = create_recommender("aws-popularity-count").fit(log)
    assert popular.recommend("probe", 5, recent=switched) == popular.recommend("probe", 5)
