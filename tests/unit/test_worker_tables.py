"""Local tables under exactly-once start empty (rebuilt from the changelog)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.worker import discard_local_tables
from tests.helpers import make_settings


def _tables(tmp_path: Path) -> Path:
    tabledir = tmp_path / "v1" / "tables"
    (tabledir / "tariffstream-customers-0.db").mkdir(parents=True)
    (tabledir / "tariffstream-customers-0.db" / "CURRENT").write_text("x")
    return tabledir


def test_exactly_once_on_rocksdb_discards_the_local_tables(tmp_path: Path) -> None:
    tabledir = _tables(tmp_path)
    settings = make_settings(
        **{
            "streams.processing_guarantee": "exactly_once",
            "streams.store": "rocksdb://",
        }
    )
    assert discard_local_tables(settings, tabledir)
    assert not tabledir.exists()
    assert tmp_path.exists()  # only the tables go


@pytest.mark.parametrize(
    ("guarantee", "store"),
    [("at_least_once", "rocksdb://"), ("exactly_once", "memory://")],
)
def test_other_setups_keep_their_tables(
    tmp_path: Path, guarantee: str, store: str
) -> None:
    tabledir = _tables(tmp_path)
    settings = make_settings(
        **{"streams.processing_guarantee": guarantee, "streams.store": store}
    )
    assert not discard_local_tables(settings, tabledir)
    assert (tabledir / "tariffstream-customers-0.db" / "CURRENT").exists()
