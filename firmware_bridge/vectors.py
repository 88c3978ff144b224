"""Shared test vectors: byte streams and what they decode to, written by the Python codec for the C core.

    python -m firmware_bridge.vectors --write     # regenerate firmware/vectors/*.txt and pxby_protocol.h
    python -m firmware_bridge.vectors --check     # exit 1 if the committed files are stale

Golden files change only through ``--write`` (never by editing a flag in a test). The format is
line based so that C reads it with ``fgets``: ``vector NAME``, ``stream HEX`` (fed to one fresh
decoder), ``expect LINE`` for each decoded item in order (``msg ...`` or ``bad REASON``), ``end``.
``--corpus DIR`` writes the streams as seed files for the fuzzer.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from firmware_bridge import protocol as pr
from firmware_bridge.errors import FirmwareSourcesMissing
from firmware_bridge.frame import BadFrame, Decoder, Message, encode

FIRMWARE = Path(__file__).resolve().parent / "firmware"
VECTOR_FILE = FIRMWARE / "vectors" / "frames.txt"
HEADER_FILE = FIRMWARE / "pxby_protocol.h"


def firmware_sources(firmware: Path = FIRMWARE) -> Path:
    """The firmware folder with its C sources and vectors (a wheel ships them as package data);
    ``FirmwareSourcesMissing`` when this install has none, rather than calling them stale."""
    missing = [n for n in ("pxby_core.c", "pxby_core.h", "Makefile", "device_check.c") if not (firmware / n).is_file()]
    if missing:
        raise FirmwareSourcesMissing(
            f"the C firmware sources are not in this install ({firmware} lacks {', '.join(missing)}): "
            "reinstall pxby-edge from a wheel that ships them, or run from a clone of the repository"
        )
    return firmware


def expect_line(item) -> str:
    if isinstance(item, BadFrame):
        return f"bad {item.reason}"
    return (
        f"msg type={item.type} flags={item.flags} channel={item.channel} seq={item.seq} ack={item.ack} "
        f"version={item.version} payload={item.payload.hex()}"
    )


def _samples() -> list[tuple[str, bytes]]:
    caps = pr.Capabilities()
    m = encode
    hello = Message(pr.HELLO, pr.pack(pr.HELLO, proto_min=1, proto_max=1, nonce=0xDEADBEEF, max_payload=512))
    hello_ack = Message(pr.HELLO_ACK, pr.pack(pr.HELLO_ACK, version=1, proto_min=1, proto_max=1, fw_major=0, fw_minor=1,
                                              fw_patch=0, nonce=0xDEADBEEF, boot_id=3, **caps.as_fields()))
    tiles = Message(pr.TILES, pr.pack(pr.TILES, bytes(range(32)), first_slot=359), pr.F_RELIABLE, pr.CH_GRAPHICS, 65535, 0xBEEF)
    rect = Message(pr.MAP_RECT, pr.pack(pr.MAP_RECT, bytes(8), x=1, y=2, w=2, h=2), pr.F_RELIABLE, pr.CH_GRAPHICS, 4, 1)
    pal = Message(pr.PALETTE, pr.pack(pr.PALETTE, **{f"{c}{i}": 60 * i + k for i in range(4) for k, c in enumerate("rgb")}), 1)
    chunk = Message(pr.AUDIO_CHUNK, pr.pack(pr.AUDIO_CHUNK, bytes([128, 0, 255] * 100), offset=123456), pr.F_END, pr.CH_AUDIO)
    zeros = Message(pr.TILES, pr.pack(pr.TILES, bytes(16 * 31), first_slot=0), pr.F_RELIABLE, 1, 2, 3)
    long_run = Message(pr.TEXT, pr.pack(pr.TEXT, b"x" * 600, append=1), pr.F_RELIABLE, pr.CH_TEXT, 9, 9)
    cases = [
        ("hello", m(hello)),
        ("hello_ack", m(hello_ack)),
        ("ping_pong", m(Message(pr.PING, b"\x01\x02\x03\x04", ack=5)) + m(Message(pr.PONG, b"\x01\x02\x03\x04"))),
        ("ack_nak", m(Message(pr.ACK, pr.pack(pr.ACK, session=5, audio_next=10, audio_limit=4106, sack=0x80000005), ack=17))
         + m(Message(pr.NAK, pr.pack(pr.NAK, session=5, reason=1, expected=16, sack=3), ack=16))),
        ("reset_palette_commit", m(Message(pr.RESET, b"", 1)) + m(pal) + m(Message(pr.COMMIT, b"\x07\x00\x00\x00", 1))),
        ("tiles_wrapping_seq", m(tiles)),
        ("map_rect", m(rect)),
        ("audio_chunk_end", m(chunk)),
        ("all_zero_tiles", m(zeros)),
        ("runs_over_254", m(long_run)),
        ("empty_frames_are_idle", b"\x00\x00\x00" + m(hello) + b"\x00\x00"),
        ("garbage_then_frame", b"\x13\x37noise" + b"\x00" + m(rect)),
        ("corrupted_then_good", _flip(m(tiles), 10) + m(tiles)),
        ("bad_cobs", b"\x05\x01\x02\x00" + m(hello)),
        ("short", encode(Message(pr.PING))[:3] + b"\x00"),
        ("too_long", b"\x01" * (pr.MAX_ENCODED + 10) + b"\x00" + m(rect)),
        ("future_version_ping_refused_hello_read",
         m(Message(pr.PING, b"abcd", version=2)) + m(Message(pr.HELLO, hello.payload, version=2))),
        ("truncated_frame_runs_into_next", m(tiles)[:20] + m(rect)),
    ]
    rng = random.Random(2024)
    for k in range(24):
        parts = []
        for _ in range(rng.randrange(1, 6)):
            if rng.random() < 0.3:
                parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))))
            else:
                mt = rng.choice(sorted(pr.MESSAGE_NAMES))
                payload = bytes(rng.choice([0, rng.randrange(256)]) for _ in range(rng.randrange(0, 300)))
                wire = m(Message(mt, payload, rng.randrange(4), rng.randrange(5), rng.randrange(65536), rng.randrange(65536)))
                if rng.random() < 0.2:
                    wire = _flip(wire, rng.randrange(len(wire) - 1))
                parts.append(wire)
        cases.append((f"random_{k:02d}", b"".join(parts)))
    return cases


def _flip(wire: bytes, i: int) -> bytes:
    b = bytearray(wire)
    b[i] ^= 0x20 if b[i] ^ 0x20 else 0x21  # never turn a byte into the delimiter
    return bytes(b)


def vector_text() -> str:
    lines = ["# Generated by `python -m firmware_bridge.vectors --write`; do not edit."]
    for name, stream in _samples():
        lines += [f"vector {name}", f"stream {stream.hex()}"]
        lines += [f"expect {expect_line(item)}" for item in Decoder().feed(stream)]
        lines.append("end")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if "--corpus" in argv:
        out = Path(argv[argv.index("--corpus") + 1])
        out.mkdir(parents=True, exist_ok=True)
        for name, stream in _samples():
            (out / f"{name}.bin").write_bytes(b"\x00" + stream)
        return 0
    try:
        firmware_sources(VECTOR_FILE.parent.parent)
    except FirmwareSourcesMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = {VECTOR_FILE: vector_text(), HEADER_FILE: pr.c_header()}
    if "--write" in argv:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
        return 0
    if "--check" in argv:
        stale = [str(p) for p, t in files.items() if not p.is_file() or p.read_text() != t]
        if stale:
            print("stale: " + ", ".join(stale) + " (run `python -m firmware_bridge.vectors --write`)")
            return 1
        print("vectors and header are up to date")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
