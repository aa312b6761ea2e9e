"""atheris (libFuzzer) harness for the Diameter decoder stack; not collected by pytest.

    pip install atheris   # not a project dependency
    .venv/bin/python tests/fuzz/fuzz_diameter.py [corpus_dir] -max_len=4096

Invariant (as tests/diameter/test_fuzz.py): bytes through FrameBuffer (whole and one byte at
a time) -> decode_message -> check_request/check_answer -> every value, raise nothing but
DiameterError, and the FrameBuffer never holds max_message_size bytes.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-not-found]

with atheris.instrument_imports():
    from diameter import DiameterError, FrameBuffer, check_request, decode_message
    from diameter.validate import check_answer

MAX = 4096


def _values(avps: list) -> None:  # type: ignore[type-arg]
    for a in avps:
        try:
            v = a.value
        except DiameterError:
            continue
        if isinstance(v, list):
            _values(v)


def _one(frame: bytes) -> None:
    try:
        m = decode_message(frame)
        (check_request if m.is_request else check_answer)(m)
    except DiameterError:
        return
    _values(m.avps)
    assert m.encode() == frame


def test_one_input(data: bytes) -> None:
    for chunk in (len(data) or 1, 1):
        fb = FrameBuffer(MAX)
        try:
            for i in range(0, len(data), chunk):
                for frame in fb.feed(data[i : i + chunk]):
                    _one(frame)
                assert fb.buffered < MAX
        except DiameterError as exc:
            assert exc.fatal
    _one(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
