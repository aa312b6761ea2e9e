"""Bad CLI arguments: one clear line and exit 2 (usage), never a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from icx.cli import main


@pytest.mark.parametrize("verb", [["ccr"], ["bench", "diameter"]])
@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_a_port_out_of_range_is_a_usage_error(verb: list[str], port: str) -> None:
    """`icx ccr --port 99999` ended in OverflowError from connect() (a traceback)."""
    res = CliRunner().invoke(main, [*verb, "--port", port])
    assert res.exit_code == 2, (res.output, res.exception)
    assert "Invalid value for '--port'" in res.output
