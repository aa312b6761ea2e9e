"""`icx codec decode`: hex and file input, --check, --json, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from diameter import Avp, Message
from icx.commands.codec import codec


def _cer() -> bytes:
    return Message.request(257, 0, [Avp.new("Origin-Host", "a.example"), Avp.new("Origin-Realm", "example")]).encode()


def test_decode_hex_prints_names() -> None:
    r = CliRunner().invoke(codec, ["decode", _cer().hex()])
    assert r.exit_code == 0, r.output
    assert "CER code=257" in r.output and "Origin-Host = a.example" in r.output


def test_check_and_json_report_the_error(tmp_path: Path) -> None:
    f = tmp_path / "frames.bin"
    f.write_bytes(_cer() + _cer())
    r = CliRunner().invoke(codec, ["decode", "--file", str(f), "--check", "--json"])
    assert r.exit_code == 1  # CER without Host-IP-Address etc. -> 5005
    docs = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    assert len(docs) == 2 and docs[0]["error"]["result_code"] == 5005
    assert docs[0]["avps"][0] == {"code": 264, "vendor": 0, "flags": 64, "name": "Origin-Host", "value": "a.example"}


def test_bad_input_exits_2() -> None:
    r = CliRunner().invoke(codec, ["decode", "zz"])
    assert r.exit_code == 2 and "<arg1>:1: not hex" in r.output
    r = CliRunner().invoke(codec, ["decode", "--file", "/nonexistent/x"])
    assert r.exit_code == 2


def test_broken_framing_exits_1() -> None:
    r = CliRunner().invoke(codec, ["decode", "0200001400000000000000000000000000000000"])
    assert r.exit_code == 1 and "5011" in r.output
