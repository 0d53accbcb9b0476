"""`zoo export`: a trained run in an export format (a plugin of the `zoo.exporters` group; built in: onnx),
validated against PyTorch."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from zoo.cli.options import FiniteFloat, data_option, print_json, user_errors
from zoo.errors import ZooError


@click.command("export")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--format", "format_name", default="onnx", show_default=True, help="An export format (see `zoo list`).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="Output file (default RUN/model.onnx).")
@click.option("--opset", type=int, default=None, help="ONNX opset (default 17).")
@click.option("--atol", type=FiniteFloat(min=0), default=None, help="Validation tolerance on logits (default 1e-4).")
@click.option("--with-tokenizer", is_flag=True,
              help="onnx: one model from raw text to logits (tokenizer inside, onnxruntime-extensions ops).")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="onnx: dynamic int8 quantization; reports the accuracy change and speed-up against fp32.")
@click.option("--max-accuracy-drop", type=click.FloatRange(min=0, max=100), default=None,
              help="onnx --quantize: validation accuracy points the quantized model may lose (default 0.5).")
@data_option
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for the PyTorch reference and onnxruntime during validation (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def export_command(run: Path, format_name: str, output: Path | None, opset: int | None, atol: float | None,
                   with_tokenizer: bool, quantize: str | None, max_accuracy_drop: float | None,
                   data: str | None, threads: int | None, as_json: bool) -> None:
    """Export a trained run and validate it against PyTorch on real reviews."""
    from zoo.errors import ExportError
    from zoo.registry.discovery import exporters

    exporter = exporters().get(format_name)
    origin = f"export format {format_name!r} from {exporters().describe(format_name).distribution}"
    options = {"opset": opset, "atol": atol, "data": data, "threads": threads}
    # Format-specific options go only to exporters when given, so other formats need not know them.
    options |= {"with_tokenizer": True} if with_tokenizer else {}
    options |= {"quantize": quantize} if quantize else {}
    options |= {"max_accuracy_drop": max_accuracy_drop / 100} if max_accuracy_drop is not None else {}
    try:
        with contextlib.redirect_stdout(sys.stderr):  # an exporter's prints must not corrupt --json output
            report = exporter.export(run, output, **options)
    except ExportError as exc:
        if as_json and exc.report:
            print_json(_export_summary(exc.report))
        raise
    except ZooError:
        raise
    except Exception as exc:  # a third-party exporter's own fault
        raise ExportError(f"{origin} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(report, dict):
        raise ExportError(f"{origin} returned {type(report).__name__}, not a report dict; the plugin is broken")
    if as_json:
        print_json(_export_summary(report))
    elif "quantization" in report:
        speed = ", ".join(f"{name} {s['speedup']:.2f}x" for name, s in report["speed"].items())
        click.echo(f"exported {report['path']}: validation accuracy {100 * report['validation_accuracy_onnx']:.2f}% "
                   f"({100 * report['accuracy_change']:+.2f} points against PyTorch fp32), max |logit difference| "
                   f"{report['max_abs_diff']:.2e}; onnxruntime speed-up over fp32: {speed} (passed)")
    elif "max_abs_diff" in report:
        click.echo(f"exported {report['path']}: max |logit difference| {report['max_abs_diff']:.2e} over "
                   f"{report['checked']} checks at batch sizes {report['batch_sizes']} (passed)")
    else:
        click.echo(f"exported {report.get('path')}")


def _export_summary(report: dict) -> dict:
    """The documented JSON fields of an export report (a plugin's report is shown whole)."""
    keys = ("path", "max_abs_diff", "checked", "batch_sizes", "passed", "input", "quantization", "accuracy_change",
            "validation_accuracy_torch", "validation_accuracy_onnx", "prediction_agreement", "batch_invariance", "speed")
    return {k: report[k] for k in keys if k in report} or report
