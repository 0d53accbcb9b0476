"""`zoo evaluate` and `zoo predict`: a trained run's metrics, and predictions from a run or an exported model."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from zoo.cli.options import data_option, print_json, user_errors


@click.command("evaluate")
@click.argument("run", type=click.Path(path_type=Path))
@data_option
@click.option("--split", type=click.Choice(["test", "validation"]), default="test", show_default=True)
@click.option("--allow-other-data", is_flag=True,
              help="Evaluate on data whose fingerprint differs from the data the run was trained on.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def evaluate_command(run: Path, data: str | None, split: str, allow_other_data: bool, threads: int | None,
                     as_json: bool) -> None:
    """Accuracy, macro-F1, per-class precision / recall / F1 and the confusion matrix (also drawn as
    RUN/confusion.png) of a trained run."""
    from zoo.inference.evaluate import evaluate_run

    metrics = evaluate_run(run, data, split, threads, allow_other_data)
    if as_json:
        print_json(metrics)
        return
    click.echo(f"{split}: {metrics['count']:,} texts  accuracy {metrics['accuracy']:.4f}  "
               f"macro-F1 {metrics['macro_f1']:.4f}  loss {metrics['loss']:.4f}")
    classes = metrics["classes"]
    width = max(len("class"), *(len(c) for c in classes))
    click.echo(f"{'class':<{width}}  precision  recall      f1  support")
    for name, row in metrics["per_class"].items():
        click.echo(f"{name:<{width}}  {row['precision']:>9.4f}  {row['recall']:>6.4f}  {row['f1']:.4f}  {row['support']:>7,}")
    cell = max(7, *(len(c) for c in classes), *(len(f"{n:,}") for r in metrics["confusion_matrix"] for n in r))
    click.echo("confusion (rows true, columns predicted):")
    click.echo(f"{'':<{width}}  " + " ".join(f"{c:>{cell}}" for c in classes))
    for name, row in zip(classes, metrics["confusion_matrix"]):
        click.echo(f"{name:<{width}}  " + " ".join(f"{n:>{cell},}" for n in row))
    if metrics["confusion_png"]:
        click.echo(f"picture: {metrics['confusion_png']}")


@click.command("predict")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for PyTorch or onnxruntime (default: all cores).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: label, its probability, and every class's probabilities.")
@user_errors
def predict_command(model: Path, texts: tuple[str, ...], threads: int | None, as_json: bool) -> None:
    """Classify TEXTs (or each line of stdin: one text per \\n-separated line) with a run directory or a .onnx model.

    Prints the predicted label and its probability; --json adds every class's probability.
    """
    from zoo.inference.predict import input_lines, line_chunks, open_predictor

    predict = open_predictor(model, threads)
    batches = [list(texts)] if texts else line_chunks(input_lines(sys.stdin.buffer))
    for batch in batches:
        for text, result in zip(batch, predict(batch), strict=True):
            if as_json:
                print_json(result)
            else:
                preview = " ".join(text.split())
                click.echo(f"{result['label']}\t{result['probability']:.4f}\t{preview[:70]}{'...' if len(preview) > 70 else ''}")
        sys.stdout.flush()  # print as we go
