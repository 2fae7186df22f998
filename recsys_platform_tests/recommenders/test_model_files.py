"""Models are stored as npz + JSON: loading gives identical predictions and can never run code."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest

from recsys_platform.modelling.recommenders.base import InteractionLog, RecentInteractions, Recommender
from recsys_platform.modelling.recommenders.model_files import ModelFileError
from recsys_platform.modelling.recommenders.registry import RECIPES, create_recommender

ALS_FOR_TESTS = {"factors": "8", "iterations": "10", "regularization": "0.01"}
# every recipe, and the variants whose state differs: event weights, ALS similarity in the sequential
# model and ALS chosen by the EASE-or-ALS wrapper (a nested model)
VARIANTS = [(recipe, ALS_FOR_TESTS, {}) for recipe in sorted(RECIPES)] + [
    ("aws-user-personalization-v2", {**ALS_FOR_TESTS, "ease_max_items": "10"}, {}),
    ("ease-or-als", {**ALS_FOR_TESTS, "ease_max_items": "10"}, {}),
    ("item-knn", ALS_FOR_TESTS, {"purchase": 1.0, "view": 0.25}),
    ("aws-popularity-count", {}, {"purchase": 1.0, "cart": 0.5}),
]


def shop_log(seed: int = 3, users: int = 120, items: int = 90, rows: int = 2500) -> InteractionLog:
    """Users of six tastes (15 items each), some noise, three event types, timestamps with ties."""
    rng = np.random.default_rng(seed)
    user = rng.integers(users, size=rows)
    item = np.where(rng.random(rows) < 0.2, rng.integers(items, size=rows), (user % 6) * 15 + rng.integers(15, size=rows))
    return InteractionLog(
        np.array([f"u{n}" for n in user], dtype=object),
        np.array([f"i{n}" for n in item], dtype=object),
        rng.integers(1_700_000_000, 1_700_000_300, size=rows).astype(np.int64),
        rng.choice(["view", "cart", "purchase"], size=rows).astype(object),
    )


@pytest.mark.parametrize(("recipe", "hyperparameters", "weights"), VARIANTS)
def test_saved_models_predict_exactly_the_same(recipe, hyperparameters, weights, tmp_path):
    model = create_recommender(recipe, hyperparameters, weights).fit(shop_log())
    model.save(tmp_path / "model.npz")
    loaded = Recommender.load(tmp_path / "model.npz")
    assert type(loaded) is type(model)
    recent = RecentInteractions(["i3", "i80", "new-item"], [1_800_000_000, 1_800_000_001, 1_800_000_002],
                                ["view", "purchase", "view"])
    for user in ["u0", "u1", "u17", "u99", "never-seen"]:
        assert loaded.recommend(user, 40) == model.recommend(user, 40)  # scores too, bit for bit
        assert loaded.recommend(user, 10, exclude=["i0", "i15"]) == model.recommend(user, 10, exclude=["i0", "i15"])
        assert loaded.recommend(user, 10, recent=recent) == model.recommend(user, 10, recent=recent)
    assert (tmp_path / "model.npz").stat().st_mode & 0o077 == 0  # user data: private to the owner
    with zipfile.ZipFile(tmp_path / "model.npz") as archive:  # plain arrays and a JSON description
        assert all(name.endswith(".npy") for name in archive.namelist())
        meta = json.loads(np.load(archive.open("__meta__.npy")).tobytes())
    assert meta["format"] == "recsys-model" and meta["class"].endswith(type(model).__qualname__)


class _RunsCode:
    """What a malicious model file would carry: unpickling it calls `touch(path)`."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_pickled_file_is_refused_and_never_run(tmp_path):
    witness = tmp_path / "ran"
    (tmp_path / "pickled.npz").write_bytes(pickle.dumps(_RunsCode(witness)))
    with pytest.raises(ModelFileError, match="not a model file"):
        Recommender.load(tmp_path / "pickled.npz")
    # the same payload as an object array inside a real npz: numpy refuses it (allow_pickle=False)
    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.frombuffer(b"{}", dtype=np.uint8), evil=np.array([_RunsCode(witness)], dtype=object))
    with pytest.raises(ModelFileError, match="allow_pickle=False"):
        Recommender.load(io.BytesIO(buffer.getvalue()))
    assert not witness.exists()


def test_only_model_library_classes_can_be_loaded(tmp_path):
    model = create_recommender("aws-popularity-count").fit(shop_log())
    buffer = io.BytesIO()
    model.save(buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        arrays = {name[:-4]: np.load(archive.open(name)) for name in archive.namelist()}
    meta = json.loads(arrays["__meta__"].tobytes())
    meta["class"] = "subprocess.Popen"  # a file may claim any class; only registered ones are built
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    forged = io.BytesIO()
    np.savez(forged, **arrays)
    with pytest.raises(ModelFileError, match="subprocess.Popen"):
        Recommender.load(io.BytesIO(forged.getvalue()))
    with pytest.raises(ModelFileError, match="not a model file"):
        Recommender.load(io.BytesIO(b"not a model"))


def test_state_that_cannot_be_stored_safely_is_refused_at_save():
    model = create_recommender("aws-popularity-count").fit(shop_log())
    model.cache = {"u1": {"i1", "i2"}}  # a set: no safe round trip
    with pytest.raises(TypeError, match="attribute cache"):
        model.save(io.BytesIO())
