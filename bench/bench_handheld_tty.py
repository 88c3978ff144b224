"""Retransmissions of `pxby-edge stream` to a `pxby-edge handheld --pty --tty` whose terminal is slow.

    python bench/bench_handheld_tty.py --seed 3 --drain-kbps 1000     # terminal drained at ~1 MB/s
    python bench/bench_handheld_tty.py --seed 3 --drain-kbps 0        # terminal output to a file

Starts the handheld with its stdout on a pty that this script reads at ``--drain-kbps`` KB/s (a real
terminal drawing 24-bit colour half blocks; 0 = as fast as it comes, to a temporary file), streams
``--seed`` with the bundled model, and prints the stream's summary line (bytes, retransmits,
reconnects). Both processes are the CLI, run from this checkout.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())"]


def drain(fd: int, kbps: float, stop: threading.Event) -> None:
    block = 16384
    while not stop.is_set():
        try:
            os.read(fd, block)
        except OSError:
            return
        if kbps:
            time.sleep(block / (kbps * 1000))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--drain-kbps", type=float, default=1000.0, help="terminal speed; 0 = a file")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    master, slave = os.openpty()
    tty.setraw(slave)
    out = tempfile.TemporaryFile() if not args.drain_kbps else slave
    hh = subprocess.Popen([*CLI, "handheld", "--pty", "--tty", "--seconds", "600"], stdout=out,
                          stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    try:
        port = _port_line(master, out)
        stop = threading.Event()
        threading.Thread(target=drain, args=(master, args.drain_kbps, stop), daemon=True).start()
        run = subprocess.run([*CLI, "stream", "--seed", str(args.seed), "--port", port], capture_output=True,
                             text=True, cwd=ROOT, env=env)
        stop.set()
        print((run.stdout.strip().splitlines() or [run.stderr.strip()])[-1])
        return run.returncode
    finally:
        hh.send_signal(2)
        try:
            hh.wait(timeout=30)
        except subprocess.TimeoutExpired:
            hh.kill()
            hh.wait()


def _port_line(master: int, out) -> str:
    """The handheld's `port: PATH` line, from the pty or from the file its stdout went to."""
    buf = b""
    deadline = time.monotonic() + 30
    while b"\n" not in buf[buf.find(b"port:"):] or b"port:" not in buf:
        if time.monotonic() > deadline:
            raise SystemExit("the handheld printed no port line")
        if out is master or isinstance(out, int):
            buf += os.read(master, 4096)
        else:
            out.seek(0)
            buf = out.read(4096)
            time.sleep(0.05)
    return buf[buf.find(b"port:"):].split(b"\n")[0].decode().split()[1]


if __name__ == "__main__":
    sys.exit(main())
