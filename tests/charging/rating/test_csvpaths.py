"""The three CSV import paths (compiled split, columnar Python, row-by-row) give identical
columns; whenever the row-by-row path rejects a file, the fast paths decline it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cython_ext
from charging.rating.csvdeck import ImportOptions, read_deck
from charging.rating.deckdata import DeckData
from charging.rating.model import DeckError

FAST_PATHS = ["fast"] + (["compiled"] if cython_ext.load("rating") is not None else [])

def mostly(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
    """Valid cells 9 times in 10: whole files must often be valid to compare the paths."""
    return st.integers(0, 19).flatmap(lambda i: st.sampled_from(bad if i == 0 else good))


COLUMNS = {
    "destination": st.sampled_from(["", "Germany", "Côte d'Ivoire", "UK Mobile", "x y"]),
    "billing": mostly(["", "60/1", "1/1", "30/6", "6"], ["0/1", "a/b"]),
    "effective": mostly(["", "2026-01-01", "23/09/2026", "ASAP"], ["2026-02-30"]),
    "end date": mostly(["", "2027-01-01"], ["2025-01-01"]),
    "connection fee": mostly(["", "0.01", "0"], ["0.0000001", "x"]),
    "service": mostly(["", "voice", "sms", "data", "call"], ["fax"]),
    "band": st.sampled_from(["", "peak", "Offpeak"]),
    "origin": st.sampled_from(["", "41", "+44 7"]),
    "rate 1": st.sampled_from(["", "0.2", "1.5"]),
    "change": mostly(["", "", "Increase"], ["Closed"]),
}
codes = st.integers(0, 19).flatmap(lambda i: st.sampled_from(
    ["", "336 07", "+41", "49172-49174", "1, 2", "*", "internet"]) if i == 0
    else st.text(alphabet="0123456789", min_size=3, max_size=7))
rates = st.integers(0, 19).flatmap(lambda i: st.sampled_from(
    [".5", "0,05", "1e3", "-1", "", "0.1234567891", "0.12345678900", "999999999.5", "1000000000"])
    if i == 0 else st.from_regex(r"\A[0-9]{1,3}(\.[0-9]{0,9})?\Z"))


@st.composite
def decks(draw: st.DrawFn) -> tuple[str, str]:
    extra = draw(st.lists(st.sampled_from(sorted(COLUMNS)), unique=True, max_size=5))
    header = ["prefix", "rate", *extra]
    delim = draw(st.sampled_from([",", ";"]))
    lines = [delim.join(header)]
    for _ in range(draw(st.integers(1, 6))):
        cells = [draw(codes), draw(rates)] + [draw(COLUMNS[c]) for c in extra]
        if draw(st.integers(0, 29)) == 0:
            cells = cells[: draw(st.integers(0, len(cells)))]  # short rows and blank lines
        quoted = [f'"{c}"' if (delim in c or draw(st.integers(0, 49)) == 0) else c for c in cells]
        lines.append(delim.join(quoted))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"])), delim


def columns(d: DeckData) -> dict[str, object]:
    return {k: (list(v) if not isinstance(v, list | dict) else v) for k, v in (
        (name, getattr(d, name)) for name in (
            "service", "prefix", "origin", "dest", "band", "blocked", "rate", "rate_first",
            "inc_first", "inc_next", "rate_unit", "fee", "min_charge", "eff_from", "eff_to",
            "names", "bands", "tiers"))}


@settings(max_examples=150, deadline=None)
@given(deck=decks())
def test_paths_agree(deck: tuple[str, str]) -> None:
    text, _ = deck
    opts = ImportOptions(timezone="Europe/Zurich")
    try:
        slow = read_deck(text, opts, is_text=True, only="slow")
    except DeckError:
        slow = None
    for path in FAST_PATHS:
        try:
            fast = read_deck(text, opts, is_text=True, only=path)
        except LookupError:
            continue
        except DeckError:
            assert slow is None  # e.g. no header: every path says so
            continue
        assert slow is not None, f"{path} accepted what the row path rejects"
        assert columns(fast.data) == columns(slow.data), path
        assert fast.lines == slow.lines


@pytest.mark.parametrize("path", FAST_PATHS)
def test_fast_paths_take_the_plain_shapes(path: str) -> None:
    text = "Code,Destination,Rate,Billing,Effective\n" + "".join(
        f"{41 + i},Dest {i % 7},0.{i:04d},60/1,2026-01-01\n" for i in range(200))
    res = read_deck(text, ImportOptions(), is_text=True, only=path)
    assert len(res.data) == 200 and res.lines == 201
