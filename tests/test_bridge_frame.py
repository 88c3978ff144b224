"""Properties of the frame codec: round trips, and a decoder that never crashes on any bytes.

    .venv/bin/pytest tests/test_bridge_frame.py
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import protocol as pr
from firmware_bridge.frame import (
    BAD_REASONS,
    BadFrame,
    Decoder,
    Message,
    cobs_decode,
    cobs_encode,
    crc32c,
    encode,
)

pytestmark = pytest.mark.pi  # the torch-free tier: scripts/arm64-check runs it

messages = st.builds(
    Message,
    type=st.sampled_from(sorted(pr.MESSAGE_NAMES)),
    payload=st.binary(max_size=pr.MAX_PAYLOAD),
    flags=st.integers(0, 255),
    channel=st.integers(0, 255),
    seq=st.integers(0, 0xFFFF),
    ack=st.integers(0, 0xFFFF),
)


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


@given(st.binary(max_size=2000))
def test_cobs_round_trip_and_no_zero(data):
    enc = cobs_encode(data)
    assert 0 not in enc
    assert cobs_decode(enc) == data
    assert len(enc) <= len(data) + len(data) // 254 + 1


@given(messages)
def test_any_message_round_trips(msg):
    wire = encode(msg)
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    assert len(wire) <= pr.MAX_ENCODED + 1
    assert Decoder().feed(wire) == [msg]


@given(st.lists(messages, max_size=6), st.integers(1, 64))
def test_split_anywhere(msgs, step):
    wire = b"".join(encode(m) for m in msgs)
    dec = Decoder()
    got = []
    for i in range(0, len(wire), step):
        got += dec.feed(wire[i : i + step])
    assert got == msgs


@settings(max_examples=150)
@given(st.binary(max_size=3000), st.lists(st.binary(max_size=64), max_size=4))
def test_any_bytes_never_crash_and_are_bounded(data, more):
    dec = Decoder()
    for chunk in [data, *more]:
        for item in dec.feed(chunk):
            assert isinstance(item, (Message, BadFrame))
            if isinstance(item, BadFrame):
                assert item.reason in BAD_REASONS
        assert dec.pending <= pr.MAX_ENCODED


@settings(max_examples=100)
@given(st.binary(max_size=3000), st.lists(messages, min_size=1, max_size=4))
def test_valid_frames_after_garbage_are_decoded(garbage, msgs):
    # one delimiter after the garbage resynchronises; everything after it must come through
    dec = Decoder()
    dec.feed(garbage)
    got = [m for m in dec.feed(b"\x00" + b"".join(encode(m) for m in msgs)) if isinstance(m, Message)]
    assert got[-len(msgs) :] == msgs


def test_corruption_is_reported_not_raised():
    wire = bytearray(encode(Message(pr.TILES, b"\x01" * 40, flags=pr.F_RELIABLE, seq=7)))
    wire[10] ^= 0x10
    (bad,) = Decoder().feed(bytes(wire))
    assert isinstance(bad, BadFrame) and bad.reason in ("crc", "cobs")


def test_too_long_is_dropped_with_bounded_memory():
    dec = Decoder()
    assert dec.feed(b"\x01" * (pr.MAX_ENCODED * 5)) == []
    assert dec.pending <= pr.MAX_ENCODED
    out = dec.feed(b"\x00" + encode(Message(pr.PING, b"abcd")))
    assert out[0] == BadFrame("too_long", pr.MAX_ENCODED * 5)
    assert out[1] == Message(pr.PING, b"abcd")


def test_unknown_version_refused_except_hello():
    ping = encode(Message(pr.PING, b"1234", version=9))
    hello = encode(Message(pr.HELLO, b"123456789", version=9))
    out = Decoder().feed(ping + hello)
    assert out[0] == BadFrame("version", pr.HEADER_SIZE + 4 + pr.CRC_SIZE)
    assert isinstance(out[1], Message) and out[1].version == 9


def test_payload_pack_unpack():
    caps = pr.Capabilities()
    payload = pr.pack(pr.HELLO_ACK, version=1, proto_min=1, proto_max=1, fw_major=0, fw_minor=1, fw_patch=0,
                     nonce=5, boot_id=9, **caps.as_fields())
    fields, tail = pr.unpack(pr.HELLO_ACK, payload)
    assert tail == b"" and pr.Capabilities.from_fields(fields) == caps
