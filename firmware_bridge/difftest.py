"""Differential test of the two devices: the Python ``DeviceCore`` and the C core answer the same bytes.

    python -m firmware_bridge.difftest --sequences 100000 --seed 1    # builds firmware/build/device_check

Sequences of CRC-valid frames are made with the real encoder (a session, then tiles, maps,
commits, text, palettes, sounds and pings with mostly right and sometimes wrong sequence numbers,
session tags, offsets and fields), and a share of the frames is mutated (a header field, payload
bytes cut, flipped or added) and re-CRC'd, so the frames pass the CRC and reach the handlers.
Garbage, broken CRCs and split writes are mixed in. Each sequence is written in the trace format
of ``firmware/device_check.c`` (``at MS HEX`` lines, ``end``); the C driver replays a whole batch
in one process, ``replay_python`` does the same with ``DeviceCore``, and every line must agree:
each reply byte, then the screen, the played samples, the counters and the rest of the state.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

import numpy as np

from firmware_bridge import protocol as pr
from firmware_bridge.device import U32, DeviceCore
from firmware_bridge.errors import FirmwareBuildError, FirmwareSourcesMissing
from firmware_bridge.frame import Message, encode
from firmware_bridge.vectors import firmware_sources

DEV_RATE = pr.Capabilities.audio_rate  # an AUDIO_CFG at another rate (8000 below) must be refused by both cores

FIRMWARE = Path(__file__).resolve().parent / "firmware"
# the counters in the C core's enum order (device_check prints them so)
C_COUNTERS = ("underruns", "gaps", "frames_ok", "crc_errors", "frames_bad", "dup_frames", "out_of_order", "commits",
              "samples_played", "bad_payload", "audio_overflow", "hellos")


# -- the Python side of device_check --------------------------------------------------------------


def _state_lines(dev: DeviceCore, played: dict) -> list[str]:
    palette = bytes(int(v) for shade in dev.palette for v in shade)
    state = (
        f"state session={dev.session or 0} expected={dev.expected} held={len(dev.held)} audio_next={dev.audio_next} "
        f"fill={dev.fill} playing={int(dev.playing)} ended={int(dev.ended)} format={dev.audio_format} "
        f"frame={dev.frame_no} tiles={zlib.crc32(dev.tiles.tobytes()):08x} "
        f"map={zlib.crc32(dev.tilemap.astype('<u2').tobytes()):08x} palette={palette.hex()} text={bytes(dev.text).hex()}"
    )
    return [
        f"screen {zlib.crc32(dev.screen.astype(np.uint8).tobytes()):08x}",
        f"played {played['n']} {played['crc']:08x}",
        "counters " + " ".join(str(dev.counters[k]) for k in C_COUNTERS),
        state,
    ]


def replay_python(lines: Iterable[str]) -> tuple[list[str], int]:
    """What ``device_check`` prints for ``lines``, made by ``DeviceCore``; and its handler errors."""
    out: list[str] = []
    errors = 0
    dev, played, events = None, {}, 0

    def boot():
        p = {"n": 0, "crc": 0, "next": None}

        def on_play(offset, samples):
            # the samples, and each offset that does not follow on from the last call's end: how
            # the two split their calls (ring wrap, chunk ends) does not count, the offsets do
            jump = offset.to_bytes(4, "little") if offset != p["next"] else b""
            p["n"] = (p["n"] + len(samples)) & U32
            p["next"] = (offset + len(samples)) & U32
            p["crc"] = zlib.crc32(jump + np.asarray(samples, dtype=np.uint8).tobytes(), p["crc"])

        return DeviceCore(on_play=on_play), p

    dev, played = boot()
    for line in lines:
        if line.startswith("end"):
            out += _state_lines(dev, played)
            errors += dev.counters["handler_errors"]
            dev, played = boot()
            events = 0
            continue
        parts = line.split()
        now = int(parts[1]) & U32
        if len(parts) > 2:
            dev.feed(bytes.fromhex(parts[2]), now)
        else:
            dev.tick(now)
        out.append(f"out {dev.take_output().hex()}")
        events += 1
    if events:
        out += _state_lines(dev, played)
        errors += dev.counters["handler_errors"]
    return out, errors


def build_driver(build: Optional[Path] = None) -> Path:
    """Build ``device_check`` with the firmware Makefile (gcc); returns its path."""
    if shutil.which("make") is None or shutil.which("gcc") is None:
        raise FirmwareBuildError("gcc and make are needed to build the C firmware core (apt-get install gcc make)")
    firmware = firmware_sources(FIRMWARE)
    build = Path(build or firmware / "build").resolve()
    target = build / "device_check"
    run = subprocess.run(["make", "-s", "-C", str(firmware), f"BUILD={build}", "CC=gcc", str(target)],
                         capture_output=True, text=True)
    if run.returncode:
        raise FirmwareBuildError(f"building {target} failed:\n{run.stdout}{run.stderr}")
    return target


def replay_c(driver: Path, lines: list[str]) -> list[str]:
    run = subprocess.run([str(driver)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    return run.stdout.splitlines()


# -- sequences --------------------------------------------------------------------------------------

RELIABLE_TYPES = (pr.RESET, pr.PALETTE, pr.TILES, pr.MAP_RECT, pr.COMMIT, pr.TEXT, pr.AUDIO_CFG)


class _Host:
    """A careless host: it keeps a session tag, a sequence number and an audio offset, and
    mostly uses them right."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.tag = rng.randrange(1, 65536)
        self.seq = 0
        self.offset = 0
        self.u4 = False

    def seq_for_next(self) -> int:
        r, rng = self.rng.random(), self.rng
        if r < 0.75:
            seq = self.seq
            self.seq = (self.seq + 1) & 0xFFFF
        elif r < 0.88:
            seq = (self.seq + rng.randrange(1, 10)) & 0xFFFF  # ahead of a hole: held or refused
        elif r < 0.96:
            seq = (self.seq - rng.randrange(1, 5)) & 0xFFFF  # a duplicate
        else:
            seq = rng.randrange(65536)
        return seq

    def payload(self, mtype: int) -> bytes:
        return getattr(self, f"_{pr.MESSAGE_NAMES[mtype].lower()}", lambda: self._bytes(20))()

    def _bytes(self, n: int) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(n + 1)))

    def _tiles(self) -> bytes:
        rng = self.rng
        first = rng.choice([rng.randrange(400), 9999, 383, 0, rng.randrange(65536)])
        return pr.pack(pr.TILES, bytes(rng.randrange(256) for _ in range(16 * rng.randrange(0, 5))), first_slot=first)

    def _map_rect(self) -> bytes:
        rng = self.rng
        x, y, w, h = rng.randrange(22), rng.randrange(20), rng.randrange(6), rng.randrange(6)
        slots = np.array([rng.choice([rng.randrange(384), rng.randrange(400)]) for _ in range(w * h)], dtype="<u2")
        return pr.pack(pr.MAP_RECT, slots.tobytes(), x=x, y=y, w=w, h=h)

    def _commit(self) -> bytes:
        return pr.pack(pr.COMMIT, frame=self.rng.randrange(1 << 32))

    def _text(self) -> bytes:
        return pr.pack(pr.TEXT, self._bytes(300), append=self.rng.randrange(2))

    def _palette(self) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(12))

    def _reset(self) -> bytes:
        return b""

    def _audio_cfg(self) -> bytes:
        rng = self.rng
        fmt = rng.choice([pr.AUDIO_U8, pr.AUDIO_U8, pr.AUDIO_U4, 0, 3])
        self.offset = rng.choice([0, rng.randrange(1 << 32), 0xFFFFFF00, U32 - rng.randrange(600)])
        self.u4 = fmt == pr.AUDIO_U4
        return pr.pack(pr.AUDIO_CFG, rate=rng.choice([DEV_RATE, DEV_RATE, DEV_RATE, 8000]), format=fmt, start=self.offset,
                       prebuffer=rng.choice([0, rng.randrange(5000), 256]))

    def _audio_chunk(self) -> bytes:
        rng = self.rng
        n = rng.choice([0, rng.randrange(1, 508), 300, 508])
        jump = rng.choice([0, 0, 0, rng.randrange(-400, 400), rng.randrange(1 << 32)])
        offset = (self.offset + jump) & U32
        self.offset = (offset + n * (2 if self.u4 else 1)) & U32
        return pr.pack(pr.AUDIO_CHUNK, bytes(rng.randrange(256) for _ in range(n)), offset=offset)

    def _ping(self) -> bytes:
        return pr.pack(pr.PING, token=self.rng.randrange(1 << 32))

    def _hello(self) -> bytes:
        rng = self.rng
        self.tag = rng.randrange(1, 65536) if rng.random() < 0.5 else self.tag
        self.seq = 0
        nonce = rng.randrange(1 << 16) << 16 | self.tag
        return pr.pack(pr.HELLO, proto_min=rng.choice([1, 1, 0, 2]), proto_max=rng.choice([1, 1, 3, 0]), nonce=nonce,
                       max_payload=512)

    def message(self) -> Message:
        rng = self.rng
        mtype = rng.choices(
            [pr.TILES, pr.MAP_RECT, pr.COMMIT, pr.TEXT, pr.PALETTE, pr.RESET, pr.AUDIO_CFG, pr.AUDIO_CHUNK, pr.PING,
             pr.HELLO, rng.randrange(256)],
            weights=[14, 6, 8, 4, 2, 1, 5, 16, 3, 1, 2],
        )[0]
        payload = self.payload(mtype) if mtype in pr.MESSAGE_NAMES else self._bytes(40)
        reliable = mtype in RELIABLE_TYPES or (mtype == pr.AUDIO_CHUNK and rng.random() < 0.1)
        flags = (pr.F_RELIABLE if reliable else 0) | (pr.F_END if mtype == pr.AUDIO_CHUNK and rng.random() < 0.1 else 0)
        seq = self.seq_for_next() if reliable else 0
        tag = self.tag if rng.random() < 0.97 else rng.randrange(65536)
        return Message(mtype, payload, flags, rng.randrange(5), seq, tag)


def mutate(msg: Message, rng: random.Random) -> Message:
    """One field or a few payload bytes changed; the encoder gives it a right CRC again."""
    kind = rng.randrange(8)
    p = bytearray(msg.payload)
    if kind == 0 and p:
        for _ in range(rng.randrange(1, 4)):
            p[rng.randrange(len(p))] = rng.randrange(256)
    elif kind == 1:
        del p[rng.randrange(len(p) + 1):]
    elif kind == 2:
        p += bytes(rng.randrange(256) for _ in range(rng.choice([1, 7, 600])))
        del p[pr.MAX_PAYLOAD:]
    else:
        field = ("type", "flags", "seq", "ack", "version")[kind - 3]
        top = 0xFFFF if field in ("seq", "ack") else 0xFF
        values = {f: getattr(msg, f) for f in ("type", "flags", "channel", "seq", "ack", "version")}
        values[field] = rng.randrange(top + 1)
        return Message(payload=bytes(p), **values)
    return Message(msg.type, bytes(p), msg.flags, msg.channel, msg.seq, msg.ack, msg.version)


def _split(wire: bytes, rng: random.Random) -> list[bytes]:
    if len(wire) < 2 or rng.random() < 0.7:
        return [wire]
    cut = rng.randrange(1, len(wire))
    return [wire[:cut], wire[cut:]]


def _damage(wire: bytes, rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.5:  # a broken CRC (never a new delimiter)
        b = bytearray(wire)
        i = rng.randrange(len(b) - 1)
        b[i] = b[i] ^ 0x40 or 0x41
        return bytes(b)
    if r < 0.8:
        return bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 60))) + b"\x00"
    return wire[: rng.randrange(1, len(wire))]  # cut short: runs into the next frame


def sequence(rng: random.Random, mutation: float = 0.2) -> list[str]:
    """One session's trace: ``at MS HEX`` lines, then ``end``."""
    host = _Host(rng)
    now = rng.choice([0, rng.randrange(1 << 20), U32 - rng.randrange(2000)])  # the u32 timer may wrap
    lines = []
    if rng.random() < 0.92:
        hello = Message(pr.HELLO, host._hello())
        lines.append(f"at {now} {encode(hello).hex()}")
    for _ in range(rng.randrange(1, 40)):
        now = (now + rng.choice([0, 0, 1, 2, 5, rng.randrange(60)])) & U32
        if rng.random() < 0.08:
            lines.append(f"at {now}")
            continue
        msg = host.message()
        if rng.random() < mutation:
            msg = mutate(msg, rng)
        wire = encode(msg)
        if rng.random() < 0.05:
            wire = _damage(wire, rng)
        for part in _split(wire, rng):
            lines.append(f"at {now} {part.hex()}")
    for _ in range(rng.randrange(3)):  # let the speaker play and the NAK timer run
        now = (now + rng.randrange(1, 700)) & U32
        lines.append(f"at {now}")
    lines.append("end")
    return lines


def crash_sequences() -> dict[str, list[Message]]:
    """The two message sequences that once crashed ``pxby-edge handheld`` (found by the fuzzer), after a HELLO."""
    tag = 0x1234
    hello = Message(pr.HELLO, pr.pack(pr.HELLO, proto_min=1, proto_max=1, nonce=tag, max_payload=512))
    tile = bytes(range(16))
    return {
        # seq 1 held out of order, then the hole filled by a frame whose payload is refused
        "held_then_refused_hole": [
            hello,
            Message(pr.TILES, pr.pack(pr.TILES, tile, first_slot=5), pr.F_RELIABLE, pr.CH_GRAPHICS, 1, tag),
            Message(pr.TILES, pr.pack(pr.TILES, tile, first_slot=9999), pr.F_RELIABLE, pr.CH_GRAPHICS, 0, tag),
        ],
        # a sound opened 256 samples before the 32-bit wrap, then 300 samples: audio_limit wraps
        "audio_offset_wrap": [
            hello,
            Message(pr.AUDIO_CFG, pr.pack(pr.AUDIO_CFG, rate=DEV_RATE, format=pr.AUDIO_U8, start=0xFFFFFF00, prebuffer=0),
                    pr.F_RELIABLE, pr.CH_AUDIO, 0, tag),
            Message(pr.AUDIO_CHUNK, pr.pack(pr.AUDIO_CHUNK, bytes([128]) * 300, offset=0xFFFFFF00), 0, pr.CH_AUDIO, 0,
                    tag),
        ],
    }


def crash_traces() -> list[str]:
    lines = []
    for messages in crash_sequences().values():
        lines += [f"at {10 * i} {encode(m).hex()}" for i, m in enumerate(messages)]
        lines += [f"at {10 * len(messages) + 400}", "end"]
    return lines


# -- comparing ----------------------------------------------------------------------------------------


def first_disagreement(lines: list[str], want: list[str], got: list[str]) -> Optional[str]:
    """Where the C core (``got``) and Python (``want``) part, with the input that led there."""
    for i, (w, g) in enumerate(zip(want, got)):
        if w != g:
            return f"output line {i}:\n  python {w[:300]}\n  c      {g[:300]}"
    if len(want) != len(got):
        return f"python printed {len(want)} lines, C {len(got)}"
    return None


def run(driver: Path, count: int, seed: int, batch: int = 500) -> dict:
    """``count`` sequences in batches through both devices, stopping at the first disagreement or
    handler error: ``failure`` then names the seed, the batch and the first differing line."""
    rng = random.Random(seed)
    result = {"sequences": 0, "feeds": 0, "failure": None}
    t0 = time.perf_counter()
    while result["sequences"] < count and result["failure"] is None:
        done = result["sequences"]
        seqs = [sequence(rng) for _ in range(min(batch, count - done))]
        lines = [ln for s in seqs for ln in s]
        want, errors = replay_python(lines)
        where = first_disagreement(lines, want, replay_c(driver, lines))
        if where or errors:
            result["failure"] = f"seed {seed}, sequences {done}..{done + len(seqs)}: {where or f'{errors} handler errors'}"
        result["sequences"] += len(seqs)
        result["feeds"] += sum(1 for ln in lines if ln.count(" ") == 2)
    result["seconds"] = time.perf_counter() - t0
    return result


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--driver", type=Path, default=None, help="a built device_check (default: build one)")
    args = ap.parse_args(argv)
    try:
        driver = args.driver or build_driver()
    except (FirmwareBuildError, FirmwareSourcesMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run(driver, args.sequences, args.seed)
    if result["failure"]:
        print(f"disagreement: {result['failure']}")
        return 1
    print(f"{result['sequences']} sequences ({result['feeds']} feeds): 0 disagreements, 0 handler errors "
          f"in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
