"""Fixtures: a small synthetic shop in a tmp DuckDB warehouse, a local lake, and the local Personalize stand-in."""

import pytest

from recsys_platform.resources.lake import LocalLake
from recsys_platform_tests.personalize.synthetic_shop import fill_warehouse, synthetic_interactions


@pytest.fixture
def recsys_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def warehouse(recsys_home):
    return fill_warehouse(recsys_home, synthetic_interactions())


@pytest.fixture
def lake(recsys_home):
    return LocalLake(root=str(recsys_home / "lake"))


@pytest.fixture
def personalize(recsys_home):
    from recsys_platform.resources.personalize import LocalPersonalizeResource

    resource = LocalPersonalizeResource(state_dir=str(recsys_home / "personalize"), lake_root=str(recsys_home / "lake"))
    yield resource
    resource.close()


FAST_WAIT = {"poll_seconds": 0.05, "deadline_seconds": 120}
