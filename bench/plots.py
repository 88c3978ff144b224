"""The pictures docs/BENCHMARKS.md quotes, each from the measurement it shows.

    .venv/bin/python bench/plots.py throughput --out docs/img/bench-throughput.png -r 5 --tokens 2000 \
        --save-rows bench/results/bench_throughput.json
    .venv/bin/python bench/plots.py throughput --rows bench/results/bench_throughput.json --out b.png  # no measuring
    .venv/bin/python bench/plots.py quantize bench/results/quantize_demo.json --out docs/img/quantize-size-agreement.png

``throughput`` runs ``pxby-edge bench`` on the bundled model (every installed backend and the ONNX
Runtime int8 rows, each row in a fresh process), prints the markdown table and draws tokens/s per row
with ± one standard deviation. ``quantize`` draws size against new-token top-1 agreement from
``bench/bench_quantize.py --json`` rows (a list, or ``{"rows": [...]}``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def throughput(args) -> int:
    from pxby_edge.bench import BenchMatrix, bench, format_rows, plot_rows
    from pxby_edge.generate import default_model_path

    if args.rows is not None:  # drawn again from a recorded run, nothing measured
        rows = json.loads(Path(args.rows).read_text())
    else:
        rows = bench(BenchMatrix([args.model or default_model_path()], tokens=args.tokens), repeats=args.repeats,
                     progress=lambda label: print(f"  {label}", file=sys.stderr, flush=True))
        if args.save_rows is not None:
            args.save_rows.write_text(json.dumps(rows, indent=2) + "\n")
    print(format_rows(rows, "md"))
    tokens, repeats = rows[0]["tokens"], rows[0].get("repeats", 1)
    plot_rows(rows, args.out, overwrite=True, title=f"bundled model, {tokens} tokens, {repeats} runs per row")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def quantize(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(args.rows).read_text())
    rows = data["rows"] if isinstance(data, dict) else data
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        marker = "o" if r.get("rounding") == "gptq" else ("s" if r.get("rounding") == "nearest" else "*")
        ax.scatter(r["size_ratio"], r["new_token_top1_agreement"], marker=marker, s=60)
        ax.annotate(r["recipe"], (r["size_ratio"], r["new_token_top1_agreement"]), textcoords="offset points",
                    xytext=(6, -3), fontsize=8)
    ax.axhline(0.98, color="grey", lw=0.8, ls="--")
    ax.axvline(0.30, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("file size / float file size")
    ax.set_ylabel("new-token top-1 agreement with float")
    ax.set_title("quantization recipes on the demo checkpoint (o gptq, □ nearest)")
    fig.tight_layout()
    tmp = Path(args.out).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--model", type=Path, default=None)
    t.add_argument("--tokens", type=int, default=2000)
    t.add_argument("-r", "--repeats", type=int, default=5)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--save-rows", type=Path, default=None, help="keep the measured rows as JSON")
    t.add_argument("--rows", type=Path, default=None, help="draw these recorded rows (JSON) instead of measuring")
    q = sub.add_parser("quantize")
    q.add_argument("rows", type=Path)
    q.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    return throughput(args) if args.what == "throughput" else quantize(args)


if __name__ == "__main__":
    sys.exit(main())
