"""`icx journal verify | dump | stats` on real journal directories."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from charging.journal import SyncJournal, list_segments
from icx.cli import main


def make(data: Path, n: int = 30, segment_bytes: int = 1500) -> list[object]:
    j = SyncJournal(data / "journal", segment_bytes=segment_bytes)
    recs = [{"v": 1, "type": "rated" if i % 3 else "topup", "id": f"r{i}",
             "ts": 1_800_000_000_000_000 + i, "idem": f"k{i}",
             "balance_effects": [{"account": "a", "balance": "EUR", "currency": "EUR",
                                  "amount": "-0.10"}], "holds": []} for i in range(n)]
    pos = j.append_many(recs)
    j.close()
    return pos


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.output


def test_verify_ok_and_stats(tmp_path: Path) -> None:
    make(tmp_path)
    code, out = run("journal", "verify", "--data-dir", str(tmp_path))
    assert code == 0, out
    assert "30 records: ok" in out
    code, out = run("journal", "stats", "--data-dir", str(tmp_path), "--json")
    assert code == 0
    st = json.loads(out)
    assert st["records"] == 30 and st["types"] == {"rated": 20, "topup": 10}
    assert st["segments"] == len(list_segments(tmp_path / "journal")) > 1
    assert st["first"] == "2027-01-15T08:00:00Z"


def test_dump_json_lines_and_from(tmp_path: Path) -> None:
    pos = make(tmp_path, n=5)
    code, out = run("journal", "dump", "--data-dir", str(tmp_path), "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["idem"] for r in lines] == [f"k{i}" for i in range(5)]
    p = pos[2]
    code, out = run("journal", "dump", "--data-dir", str(tmp_path), "--json", "--positions",
                    "--from", f"{p.segment}:{p.offset}")  # type: ignore[attr-defined]
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["idem"] for r in lines] == ["k3", "k4"] and lines[-1]["pos"] == list(pos[4])
    code, out = run("journal", "dump", "--data-dir", str(tmp_path))
    assert code == 0 and "rated k1 " in out and "a/EUR:-0.10" in out
    code, out = run("journal", "dump", "--data-dir", str(tmp_path), "--from", "bad")
    assert code == 2


def test_verify_fails_on_corruption_with_file_and_offset(tmp_path: Path) -> None:
    make(tmp_path)
    seg = list_segments(tmp_path / "journal")[1]
    assert seg.closed
    data = bytearray(seg.path.read_bytes())
    data[40] ^= 0xFF
    seg.path.write_bytes(bytes(data))
    code, out = run("journal", "verify", "--data-dir", str(tmp_path))
    assert code == 1
    assert f"{seg.path}:" in out and "checksum mismatch" in out


def test_verify_notes_torn_tail_and_flags_gaps(tmp_path: Path) -> None:
    make(tmp_path)
    segs = list_segments(tmp_path / "journal")
    with open(segs[-1].path, "ab") as fh:
        fh.write(b"\xce\x00\x00")
    code, out = run("journal", "verify", "--data-dir", str(tmp_path))
    assert code == 0 and "torn tail" in out
    segs[1].path.unlink()
    code, out = run("journal", "verify", "--data-dir", str(tmp_path))
    assert code == 1 and "segments 2..2 are missing" in out


def test_missing_data_dir_exit_2(tmp_path: Path) -> None:
    code, _ = run("journal", "verify", "--data-dir", str(tmp_path / "nope"))
    assert code == 2
