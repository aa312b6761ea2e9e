"""settlement.writers.write_atomic: concurrent writers of one path never publish a torn or
foreign half-written file (each has its own temp file), no temp file is left behind, and
the file keeps its mode."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from settlement.writers import to_json, write_atomic


def test_concurrent_writers_of_one_path_publish_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "out" / "DSP-2026-11-P.json"
    errors: list[BaseException] = []
    torn: list[str] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        doc = to_json({"writer": n, "lines": ["x" * 200] * 200})
        try:
            for _ in range(60):
                write_atomic(target, doc)
        except BaseException as exc:  # noqa: BLE001 -- the assertion below reports it
            errors.append(exc)

    def reader() -> None:
        while not stop.is_set():
            try:
                text = target.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            try:
                json.loads(text)
            except ValueError:
                torn.append(text[:40])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    r.join()
    assert errors == [] and torn == []
    assert json.loads(target.read_text(encoding="utf-8"))["writer"] in range(4)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp left


def test_mode_kept_and_new_files_readable(tmp_path: Path) -> None:
    new = tmp_path / "INV-1.json"
    write_atomic(new, "{}\n")
    assert new.stat().st_mode & 0o777 == 0o644
    new.chmod(0o640)
    write_atomic(new, "{\"a\": 1}\n")
    assert new.stat().st_mode & 0o777 == 0o640 and new.read_text() == "{\"a\": 1}\n"
