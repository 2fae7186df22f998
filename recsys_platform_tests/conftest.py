import pytest


@pytest.fixture
def recsys_home(tmp_path, monkeypatch):
    """A private state folder: every test gets its own warehouse, lake and Personalize state."""
    home = tmp_path / "recsys"
    home.mkdir()
    monkeypatch.setenv("RECSYS_HOME", str(home))
    return home
