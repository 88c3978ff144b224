"""How far apart one backend's logits are on two machines, fed the same contexts (teacher forcing).

    python scripts/arm64_logits.py dump MODEL BACKEND OUT.npy            # on each side
    python scripts/arm64_logits.py compare X86.npy ARM64.npy [REF.npy [--ref-name NAME]]

`dump` steps the backend through the first STEPS contexts of the upstream fixture
bulbasaur_all_s2.npz (text, sprite and cry, as real data makes them; seeded random ids when the
fixture folder is absent) and saves every step's logits. `compare` prints the largest logit
difference, how many steps pick the same top token in every slot, and, given REF (the same contexts
through another backend on the host, e.g. the interpreter the numpy backend imitates), the same
figures against it, so a cross-machine difference can be set beside the difference between two
implementations of the same graph on one machine.
Exit status 1 when the cross-machine difference is not of the same order as the REF one: more than
twice the REF logit difference, or a lower top-token agreement.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

STEPS = 400
FIXTURE = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "upstream" / "bulbasaur_all_s2.npz"


def contexts(steps: int = STEPS) -> np.ndarray:
    if FIXTURE.is_file():
        with np.load(FIXTURE) as d:
            return np.asarray(d["input_ids"][:steps], dtype=np.int32)
    return np.random.default_rng(0).integers(0, 151, size=(steps, 6), dtype=np.int32)


def dump(model: str, backend: str, out: str) -> None:
    from pxby_edge.backends import open_backend

    be = open_backend(model, backend=backend)
    ctx = contexts()
    logits = np.stack([be.step(c[None])[0] for c in ctx])  # (steps, slots, V)
    np.save(out, logits.astype(np.float32))
    print(f"{backend}: {len(ctx)} steps, logits {logits.shape[1:]}")


def figures(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    diff = float(np.abs(a - b).max())
    same = float((a.argmax(-1) == b.argmax(-1)).all(-1).mean())
    return diff, same


def compare(a_path: str, b_path: str, ref_path: str | None = None, ref_name: str = "the reference") -> int:
    a, b = np.load(a_path), np.load(b_path)
    diff, same = figures(a, b)
    scale = float(np.abs(a).max())
    text = f"max |logit diff| {diff:.3g} (logits up to {scale:.3g}), same top token {same:.1%} of {len(a)} steps"
    ok = True
    if ref_path:
        rdiff, rsame = figures(a, np.load(ref_path))
        text += f"; x86 vs {ref_name} on x86: {rdiff:.3g}, {rsame:.1%}"
        # "Of the same order": no more than twice as far apart in logits, and picking the same top token
        # at least as often, as two implementations of the graph on one machine.
        ok = diff <= 2 * rdiff and same >= rsame
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["dump"] and len(args) == 4:
        dump(*args[1:])
        sys.exit(0)
    if args[:1] == ["compare"] and len(args) == 6 and args[4] == "--ref-name":
        sys.exit(compare(args[1], args[2], args[3], args[5]))
    if args[:1] == ["compare"] and len(args) in (3, 4):
        sys.exit(compare(*args[1:]))
    print(__doc__.strip().splitlines()[2], file=sys.stderr)
    sys.exit(2)
