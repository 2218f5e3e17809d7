"""Shared checks for the pft.scaling tests."""

import pytest


def _assert_rows_equal(got, want):
    """Study rows agree cell for cell: same keys in the same order, float results to 1e-10."""
    assert [r["key"] for r in got] == [r["key"] for r in want]
    for g, w in zip(got, want):
        for name, value in w["result"].items():
            if isinstance(value, float):
                assert g["result"][name] == pytest.approx(value, rel=1e-10, abs=1e-12), (g["key"], name)
            else:
                assert g["result"][name] == value, (g["key"], name)


@pytest.fixture
def assert_rows_equal():
    return _assert_rows_equal
