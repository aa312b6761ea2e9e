"""The charging twins' parity tests skip when an extension is not built; under CI (``CI=true``)
or ``ICX_REQUIRE_EXTENSIONS=1`` a missing twin is a failure here instead, so a broken build
cannot pass as "parity skipped"."""

from __future__ import annotations

import os

import pytest

import cython_ext

TWINS = ["rating", "store_ops", "store_results", "journal_scan", "journal_frame", "journal_fields",
         "charging_slice"]


@pytest.mark.parametrize("name", TWINS)
def test_charging_twin_is_built(name: str) -> None:
    if not cython_ext.extensions_enabled():
        pytest.skip("ICX_NO_EXTENSIONS=1: pure Python by request")
    required = os.environ.get("CI") == "true" or os.environ.get("ICX_REQUIRE_EXTENSIONS") == "1"
    if cython_ext.load(name) is None:
        if required:
            pytest.fail(f"cython_ext.{name} is not built (python setup.py build_ext --inplace)")
        pytest.skip(f"cython_ext.{name} not built")
    assert cython_ext.load(name).__name__ == f"cython_ext.{name}"  # type: ignore[union-attr]
