"""Fixtures: a small synthetic shop in a tmp DuckDB warehouse, a local lake, and the local Personalize
stand-in on loopback, reached by the platform's own Personalize resource."""

import pytest

from recsys_platform.lib.lake import LocalLake
from recsys_platform.standins.local_personalize.server import start_in_background
from recsys_platform_tests.code_location import local_personalize_resource
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
def local_personalize(recsys_home):
    server = start_in_background(recsys_home / "personalize", recsys_home / "lake")
    yield server
    server.stop()


@pytest.fixture
def personalize(local_personalize):
    return local_personalize_resource(local_personalize.endpoint_url)


FAST_WAIT = {"poll_seconds": 0.05, "deadline_seconds": 120}
