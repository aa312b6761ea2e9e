"""Fuzzing the decoder stack: random and mutated frames, whole and byte-at-a-time, through
FrameBuffer -> decode_message -> check_request/check_answer -> deep value decode, yield only
DiameterError, never another exception; the FrameBuffer never holds max_message_size bytes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diameter import DiameterError, FrameBuffer, check_request, decode_message
from diameter.validate import check_answer
from tests.diameter.conftest import deep

MAX = 4096


def _consume(frame: bytes) -> None:
    """Everything a server does with one frame; only DiameterError may escape."""
    try:
        m = decode_message(frame)
    except DiameterError:
        return
    try:
        (check_request if m.is_request else check_answer)(m)
    except DiameterError:
        pass
    deep(m.avps)  # undecodable values come back as DiameterError keys, never raise
    assert decode_message(m.encode()).encode() == frame


def _stream(data: bytes, chunk: int) -> None:
    fb = FrameBuffer(MAX)
    try:
        for i in range(0, len(data), chunk):
            for frame in fb.feed(data[i : i + chunk]):
                _consume(frame)
            assert fb.buffered < MAX
    except DiameterError as exc:
        assert exc.fatal
        try:
            fb.feed(b"\x01")
            raise AssertionError("a broken FrameBuffer must keep refusing")
        except DiameterError:
            pass


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    b = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if op == 0 and b:  # flip a byte
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1 and len(b) > 20:  # poke an AVP length/flags area
            i = rng.randrange(20, len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 2:  # truncate
            del b[rng.randrange(len(b) + 1) :]
        elif op == 3:  # insert garbage
            i = rng.randrange(len(b) + 1)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif op == 4 and len(b) >= 4:  # fix the header length to the new size (passes framing)
            n = len(b) + (-len(b) % 4)
            b += bytes(n - len(b))
            b[1:4] = n.to_bytes(3, "big")
        elif op == 5 and len(b) > 28:  # set an AVP length field to something odd
            i = rng.randrange(20, len(b) - 8)
            b[i + 5 : i + 8] = rng.randrange(1 << 24).to_bytes(3, "big")
    return bytes(b)


def test_mutated_real_frames(corpus: list[bytes]) -> None:
    rng = random.Random(6733)
    for _ in range(2500):
        frame = _mutate(rng, rng.choice(corpus))
        _consume(frame)
        _stream(frame, rng.choice([1, 3, 7, len(frame) or 1]))


def test_whole_corpus_stream_byte_at_a_time(corpus: list[bytes]) -> None:
    data = b"".join(corpus[:40])
    fb = FrameBuffer(MAX)
    out: list[bytes] = []
    for i in range(len(data)):
        out += fb.feed(data[i : i + 1])
        assert fb.buffered < MAX
    assert out == corpus[:40]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), chunk=st.integers(1, 64))
def test_random_streams(data: bytes, chunk: int) -> None:
    _stream(data, chunk)
    _consume(data)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300), flags=st.integers(0, 255), code=st.sampled_from([257, 272, 280, 271, 1]))
def test_random_bodies_with_valid_framing(body: bytes, flags: int, code: int) -> None:
    body += bytes(-len(body) % 4)
    raw = ((1 << 24) | (20 + len(body))).to_bytes(4, "big") + bytes([flags]) + code.to_bytes(3, "big")
    raw += (4).to_bytes(4, "big") + bytes(8) + body
    _stream(raw, 5)
    _consume(raw)


def test_oversized_claim_is_refused_without_buffering() -> None:
    fb = FrameBuffer(MAX)
    try:
        fb.feed(b"\x01" + (MAX + 4).to_bytes(3, "big"))
        raise AssertionError("expected DiameterError")
    except DiameterError as exc:
        assert exc.fatal and exc.result_code == 5015
    assert fb.buffered == 0


@pytest.mark.slow
def test_soak_mutations(corpus: list[bytes]) -> None:
    """`make soak`: 60 000 seeded mutations through the whole decoder stack."""
    rng = random.Random(3588)
    for _ in range(60_000):
        frame = _mutate(rng, rng.choice(corpus))
        _consume(frame)
        _stream(frame, rng.choice([1, 2, 5, 13, len(frame) or 1]))
