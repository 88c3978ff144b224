"""The ``pxby-edge quantize`` command: checkpoint → streaming int8 .tflite with manifest and report.

    pxby-edge quantize models/demo -o demo.tflite --recipe dynamic --report demo.report.json

Parses options, calls ``quantize.pipeline.quantize_checkpoint``, prints a table (or ``--json``). The
module body stays light: torch, litert-torch and ai-edge-quantizer load inside the command.
"""

from __future__ import annotations

import json
import sys

import click

from quantize.recipes import DEFAULT_RECIPE, RECIPE_HELP, RECIPES
from quantize.rounding import DEFAULT_ROUNDING, ROUNDING_HELP, ROUNDINGS

# (report key, label, format) rows of the table printed at the end.
TABLE = (
    ("recipe", "recipe", "{}"),
    ("rounding", "weight rounding", "{}"),
    ("float_bytes", "float file", "{:,} B"),
    ("quant_bytes", "quantized file", "{:,} B"),
    ("size_ratio", "size ratio", "{:.3f}"),
    ("all_slot_accuracy_float", "all-slot accuracy, float", "{:.2%}"),
    ("all_slot_accuracy_quant", "all-slot accuracy, quantized", "{:.2%}"),
    ("new_token_accuracy_float", "new-token accuracy, float", "{:.2%}"),
    ("new_token_accuracy_quant", "new-token accuracy, quantized", "{:.2%}"),
    ("new_token_accuracy_drop_points", "new-token accuracy drop", "{:+.2f} points"),
    ("new_token_top1_agreement", "new-token top-1 agreement", "{:.2%}"),
    ("mean_kl", "mean KL (float || quantized)", "{:.5f}"),
    ("state_cosine_4096", "state cosine after 4096 steps", "{:.5f}"),
    ("max_abs_logit_diff_float_tflite", "float TFLite vs torch, max |logit diff|", "{:.2e}"),
    ("convert_seconds", "convert seconds (export + rounding + quantize)", "{:.1f}"),
    ("calibrate_seconds", "calibration data seconds", "{:.1f}"),
)


def choices_help(descriptions: dict) -> str:
    """One help line from a {choice: what it does} table, so the help never re-types the choices."""
    return "; ".join(f"{name}: {what}" for name, what in descriptions.items())


def format_table(report: dict) -> str:
    rows = []
    for key, label, fmt in TABLE:
        if key in report:
            try:
                rows.append((label, fmt.format(report[key])))
            except (TypeError, ValueError):
                rows.append((label, str(report[key])))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


@click.command()
@click.argument("checkpoint", type=click.Path(path_type=str))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="The .tflite to write.")
@click.option("--recipe", type=click.Choice(RECIPES), default=None,
              help=f"Quantization recipe: {choices_help(RECIPE_HELP)}. Default: int4 for a checkpoint trained "
                   f"with `train --qat int4`, else {DEFAULT_RECIPE}.")
@click.option("--rounding", type=click.Choice(ROUNDINGS), default=DEFAULT_ROUNDING, show_default=True,
              help=f"How weights are rounded to int8: {choices_help(ROUNDING_HELP)}.")
@click.option("--calib", "calib", type=click.Path(), default=None,
              help="Calibration data: a dataset folder or parquet (held-out items), or .npz token files. "
                   "Default: synthetic items never seen in training.")
@click.option("--calib-steps", type=click.IntRange(min=1), default=256, show_default=True,
              help="Calibration samples (each a batch of (context, h, c) triples).")
@click.option("--qat-steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fine-tune the rounded weight matrices this many steps on the calibration data, their "
                   "rounding in the loop (distillation from the float model; needs --rounding gptq). For int4, "
                   "training with `train --qat int4` keeps far more (docs/BENCHMARKS.md).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batch size the step graph is exported for.")
@click.option("--onnx", "onnx_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the float step as ONNX (manifest in its metadata).")
@click.option("--float", "float_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the float .tflite (with its own manifest).")
@click.option("--report", "report_out", type=click.Path(dir_okay=False), default=None,
              help="Write the fidelity report as JSON.")
@click.option("--eval-steps", type=click.IntRange(min=16), default=4096, show_default=True,
              help="Teacher-forced steps the fidelity report runs.")
@click.option("--force", is_flag=True, help="Overwrite outputs that exist.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
def quantize(checkpoint, out, recipe, rounding, calib, calib_steps, qat_steps, batch, onnx_out, float_out, report_out, eval_steps,
             force, as_json):
    """Export CHECKPOINT's streaming step to TFLite, quantize it, and report its fidelity."""
    from pxby_edge.cli import info, show_progress
    from quantize.pipeline import STAGES, quantize_checkpoint

    if qat_steps and rounding != "gptq":  # an option clash: one error line, before anything loads
        raise click.UsageError("--qat-steps fine-tunes the GPTQ-rounded weights; it needs --rounding gptq")

    bar = None

    def tick(stage):
        # Opened on the first tick, after every input was checked, so a bad input is one line on stderr.
        nonlocal bar
        if not show_progress():  # click draws a bar only on a terminal; elsewhere it printed a bare "quantize"
            return
        if bar is None:
            bar = click.progressbar(length=len(STAGES), label="quantize", file=sys.stderr,
                                    item_show_func=lambda s: s)
            bar.__enter__()
        bar.update(1, stage)

    try:
        report = quantize_checkpoint(
            checkpoint, out, recipe=recipe, rounding=rounding, calib=calib, calib_steps=calib_steps, batch=batch,
            qat_steps=qat_steps,
            onnx_out=onnx_out, float_out=float_out, report_out=report_out, force=force, eval_steps=eval_steps,
            progress=tick,
        )
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(format_table(report))
        info(f"wrote {out}" + "".join(f", {p}" for p in (float_out, onnx_out, report_out) if p))
