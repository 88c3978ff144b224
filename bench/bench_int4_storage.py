"""The int4 file of one checkpoint stored two ways: rows as one block each (the recipe) and all per channel.

    .venv/bin/python bench/bench_int4_storage.py models/demo /tmp/int4-storage
    .venv/bin/python bench/bench_invoke.py /tmp/int4-storage/dynamic.tflite /tmp/int4-storage/int4_blocks.tflite \
        /tmp/int4-storage/int4_per_channel.tflite --seconds 45

Writes ``dynamic.tflite``, ``int4_blocks.tflite`` and ``int4_per_channel.tflite`` (the recipe with
``quantize.recipes.row_block_scopes`` answering nothing, so every row is stored per channel) into OUT and
prints each file's size and new-token agreement; ``bench_invoke.py`` then times them interleaved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out", type=Path)
    a = ap.parse_args()

    import quantize.recipes as recipes
    from quantize.pipeline import quantize_checkpoint

    a.out.mkdir(parents=True, exist_ok=True)
    runs = [("dynamic.tflite", "dynamic", False), ("int4_blocks.tflite", "int4", False),
            ("int4_per_channel.tflite", "int4", True)]
    blocks = recipes.row_block_scopes
    for name, recipe, per_channel in runs:
        recipes.row_block_scopes = (lambda float_model: []) if per_channel else blocks
        try:
            r = quantize_checkpoint(a.checkpoint, a.out / name, recipe=recipe, force=True)
        finally:
            recipes.row_block_scopes = blocks
        size = (a.out / name).stat().st_size
        print(f"{name:<26} {size:>10,} B  agreement {r['new_token_top1_agreement']:.2%}", flush=True)


if __name__ == "__main__":
    main()
