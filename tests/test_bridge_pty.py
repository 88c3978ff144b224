"""The whole bridge over real pseudo-terminals, with a relay that corrupts, drops, injects and duplicates.

    .venv/bin/pytest tests/test_bridge_pty.py

host (Link on pty A) <-> relay (faults) <-> pty B <-> simulator (DeviceCore). The relay is
seeded; the simulator is restarted mid-stream. Nothing sleeps and no wall-clock time is asserted:
the tests wait on the simulator's loop (``Simulator.wait_until``, woken after each of its turns) and
judge recovery by what the host did (how it learnt of the reset, how many HELLOs it took).
"""

from __future__ import annotations

import os
import random
import select
import threading
import tty

import numpy as np
import pytest

from firmware_bridge import protocol as pr
from firmware_bridge.audio import AudioEncoder
from firmware_bridge.link import Link
from firmware_bridge.simulator import PtyTransport, Simulator
from firmware_bridge.stream import Streamer, stream_needs, synthetic_events
from firmware_bridge.terminal_view import LiveView

pytestmark = [pytest.mark.pi, pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs POSIX ptys")]


class FaultRelay:
    """Copies bytes both ways between two fds, corrupting 1 %, dropping 0.5 %, adding garbage
    bursts, and writing one host frame twice."""

    def __init__(self, a: int, b: int, seed: int, corrupt=0.01, drop=0.005, burst=0.002, dup_after=40):
        self.a, self.b = a, b
        self.rng = random.Random(seed)
        self.corrupt, self.drop, self.burst = corrupt, drop, burst
        self.dup_after = dup_after
        self.frames_a = 0
        self.frame_buf = bytearray()
        self.counts = {"corrupted": 0, "dropped": 0, "bursts": 0, "duplicated": 0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def mangle(self, data: bytes, from_host: bool) -> bytes:
        out = bytearray()
        for byte in data:
            r = self.rng.random()
            if r < self.drop:
                self.counts["dropped"] += 1
                continue
            if r < self.drop + self.corrupt:
                byte ^= 1 << self.rng.randrange(8)
                self.counts["corrupted"] += 1
            out.append(byte)
            if self.rng.random() < self.burst:
                self.counts["bursts"] += 1
                out += bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 40)))
            if from_host:
                self.frame_buf.append(byte)
                if byte == 0:
                    self.frames_a += 1
                    if self.frames_a == self.dup_after:
                        out += self.frame_buf  # the same frame again, right behind itself
                        self.counts["duplicated"] += 1
                    self.frame_buf.clear()
        return bytes(out)

    def run(self) -> None:
        while not self.stop.is_set():
            r, _, _ = select.select([self.a, self.b], [], [], 0.01)
            for fd in r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                dst = self.b if fd == self.a else self.a
                out = self.mangle(data, from_host=fd == self.a)
                while out:
                    out = out[os.write(dst, out) :]


def wait(sim: Simulator, predicate, what: str, timeout_s: float = 20.0) -> None:
    assert sim.wait_until(predicate, timeout_s), f"timed out waiting for {what}"


@pytest.fixture
def rig(running_simulator):
    host_master, host_slave = os.openpty()
    tty.setraw(host_slave)
    host_path = os.ttyname(host_slave)
    device = PtyTransport()
    device_peer = os.open(device.path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(device_peer)
    relay = FaultRelay(host_master, device_peer, seed=1234)
    sim = running_simulator(device)  # closes ``device`` at the end
    relay.thread.start()
    yield host_path, sim, relay
    relay.stop.set()
    sim.stop()
    relay.thread.join(timeout=2)
    for fd in (host_master, host_slave, device_peer):
        os.close(fd)


def _find(sent: np.ndarray, samples: np.ndarray, start: int):
    """The first index >= ``start`` where ``samples`` stand in ``sent``, or None."""
    for k in np.flatnonzero(sent[start : len(sent) - len(samples) + 1] == samples[0]) + start:
        if np.array_equal(sent[k : k + len(samples)], samples):
            return int(k)
    return None


def test_stream_through_faults_and_a_device_restart(rig):
    host_path, sim, relay = rig
    events = synthetic_events(frames=3, size=16, audio_s=2.0, audio_rate=8000, seed=3)
    link = Link(host_path, 921600, max_payload=40, window=8, need=stream_needs(), seed=7).connect()
    try:
        streamer = Streamer(link, audio_rate=8000)
        restart_at = None
        audio_seen = 0
        for event in events:
            streamer.feed(event)
            if type(event).__name__ == "AudioSample" and event.channel == 0:
                audio_seen += 1
                if audio_seen == 8000 and restart_at is None:
                    # mid-sound, after the whole sprite was drawn: the device loses everything
                    restart_at = link.clock()
                    sim.restart()
        stats = streamer.finish(timeout_s=60)
        expected = streamer.model.render()
        s = link.session
        assert s.counters["device_resets"] >= 1 and s.epoch >= 2, str((restart_at, list(s.history), s.counters))
        # recovered as fast as the protocol allows: the reset was learnt from the device's first
        # NAK(no session), not from 2 s of silence, and the new session came within a few HELLOs
        # (five quick tries 30 ms apart, then 45, 67, 101 ms...: ten HELLOs span about 0.6 s; a
        # HELLO or its answer may be corrupted on this line)
        after = [what for at, what in s.history if at >= restart_at]
        assert after[0] == "no session" and after[1].startswith("ready") and "silent" not in after, after
        assert s.hellos_sent <= 10
        wait(sim, lambda: sim.capture.screen is not None and np.array_equal(sim.capture.screen, expected),
             "the final screen")
        wait(sim, lambda: sim.core.fill == 0 and not sim.core.playing, "the speaker to play out")
    finally:
        link.close()

    # every sample played once, in order, equal to what was sent; the rest counted as gaps
    enc = AudioEncoder(8000, 8192, pr.AUDIO_U8)
    levels = [e.level for e in events if type(e).__name__ == "AudioSample" and e.channel == 0]
    want = np.concatenate([enc.push(levels), enc.flush()])
    cap = sim.capture
    last, last_sent = -1, -1
    for offset, samples in cap.chunks:
        assert offset > last, "audio went backwards or repeated"
        # The speaker is told `offset`. While more than AUDIO_MARKS jumps wait in the device's buffer (a line this
        # lossy can leave that many), the told offsets run on (docs/protocol.md): the samples then sit later in
        # what was sent than they are told, never earlier, and never twice.
        sent_at = _find(want, samples, max(offset, last_sent + 1))
        assert sent_at is not None, f"samples told at {offset} are not what was sent there or after"
        last, last_sent = offset + len(samples) - 1, sent_at + len(samples) - 1
    assert cap.replayed == 0
    # counted from the sound's start: what a reset swallowed is a gap the speaker log sees
    assert cap.played + cap.gaps == last + 1
    c = sim.counters
    # a tail that never came is counted by the device when the (reliable) end mark arrives
    assert c["gaps"] >= len(want) - (last + 1)
    # 1 % corruption loses about half the chunks sent once; the copies and the restart (which
    # drops the device's buffered ~0.5 s) leave well over a third played
    assert cap.played > 0.4 * len(want), f"only {cap.played} of {len(want)} samples arrived"
    assert c["crc_errors"] > 0 and c["boots"] == 2 and relay.counts["duplicated"] == 1
    assert stats["retransmits"] > 0
    print(f"recovery {s.ready_since - restart_at} ms, {s.hellos_sent} HELLOs; played {cap.played}, gaps {cap.gaps} of {len(want)} samples; last {last} dev gaps {c['gaps']} "
          f"retransmits {stats['retransmits']}; relay {relay.counts}")


def test_simulator_on_a_serial_url(running_simulator):
    """`pxby-edge handheld --port /dev/ttyX`: the simulator opens a tty as a serial port (here the
    slave of a second pty, bridged to the host's by a fault-free relay)."""
    from firmware_bridge.simulator import SerialTransport

    host_master, host_slave = os.openpty()
    dev_master, dev_slave = os.openpty()
    for fd in (host_slave, dev_slave):
        tty.setraw(fd)
    relay = FaultRelay(host_master, dev_master, seed=1, corrupt=0.0, drop=0.0, burst=0.0, dup_after=-1)
    transport = SerialTransport(os.ttyname(dev_slave), 921600)
    sim = running_simulator(transport)
    relay.thread.start()
    try:
        link = Link(os.ttyname(host_slave), 921600, need=stream_needs(), seed=1).connect()
        with link:
            streamer = Streamer(link, audio_rate=8000)
            for event in synthetic_events(frames=1, size=8, audio_s=0.1, seed=1):
                streamer.feed(event)
            streamer.finish(timeout_s=30)
            wait(sim, lambda: sim.capture.screen is not None and np.array_equal(sim.capture.screen,
                                                                                 streamer.model.render()), "the screen")
        assert sim.counters["crc_errors"] == 0 and sim.counters["commits"] >= 8
    finally:
        relay.stop.set()
        sim.stop()
        relay.thread.join(timeout=2)
        for fd in (host_master, host_slave, dev_master, dev_slave):
            os.close(fd)


def test_a_stuck_terminal_does_not_stall_the_device(running_simulator):
    """`handheld --tty` on a terminal that stops reading: the view blocks in its first write, the
    device keeps answering (it once drew inside its loop and went silent)."""
    release = threading.Event()
    drawn: list[int] = []

    def stuck_terminal(text: str) -> None:
        drawn.append(len(text))
        release.wait(60)

    sim = running_simulator(view=LiveView(stuck_terminal))
    try:
        with Link(sim.transport.path, 921600, need=stream_needs(), seed=2).connect() as link:
            streamer = Streamer(link, audio_rate=8000)
            for event in synthetic_events(frames=2, size=8, audio_s=0.1, seed=1):
                streamer.feed(event)
            stats = streamer.finish(timeout_s=30)
        assert len(drawn) == 1 and drawn[0] > 1000  # still inside its first draw
        assert stats["reconnects"] == 0 and sim.counters["commits"] >= 8
    finally:
        release.set()
        sim.stop()  # now, not at teardown: the view draws the newest screen as it closes
    assert sim.view.drawn >= 2  # released, it drew the newest screen before closing
