"""Rating fixtures: ``compiled`` runs a test over both raters (pure reference and the compiled
twin when built and not disabled by ICX_NO_EXTENSIONS=1); ``deck_csv`` writes a CSV file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import cython_ext

IMPLS = ["pure"] + (["compiled"] if cython_ext.load("rating") is not None else [])


@pytest.fixture(params=IMPLS)
def compiled(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "compiled")


@pytest.fixture
def deck_csv(tmp_path: Path) -> Callable[[str, str], str]:
    def write(text: str, name: str = "deck.csv") -> str:
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        return str(p)

    return write
