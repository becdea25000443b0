"""Shared test setup: no test reads the user's FER2013 file or writes caches into the repository."""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FER_UTILS_CACHE", str(tmp_path_factory.getbasetemp() / "fer_cache"))
    monkeypatch.delenv("FER2013_CSV", raising=False)


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory):
    """A small synthetic FER2013-format CSV: 12 Training, 4 PublicTest, 4 PrivateTest faces per class."""
    from fer_utils.synthetic import make_synthetic_csv

    path = tmp_path_factory.mktemp("tiny") / "tiny.csv"
    return make_synthetic_csv(path, n_per_class={"Training": 12, "PublicTest": 4, "PrivateTest": 4}, seed=3)
