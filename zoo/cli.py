"""The `zoo` command line. Each command is a thin shell over a module that does the work.

Heavy libraries (torch, onnx, datasets) are imported inside the commands that
need them, so `zoo --help` and `zoo list` start instantly.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

import click

from zoo import __version__
from zoo.errors import ZooError


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print ZooErrors as `Error: ...` with exit status 1 and no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ZooError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


class FiniteFloat(click.FloatRange):
    """A float option that refuses nan and inf (which FloatRange lets through)."""

    name = "finite float"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def _json_safe(obj: Any) -> Any:
    """nan and inf (not JSON) become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def print_json(obj: Any) -> None:
    click.echo(json.dumps(_json_safe(obj), sort_keys=False, allow_nan=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
@click.pass_context
def main(ctx: click.Context) -> None:
    """The recurrent model zoo: train, export and serve recurrent text classifiers."""
    from zoo.distributed import DISTRIBUTED_COMMANDS, launched_processes

    processes = launched_processes()
    if processes > 1 and ctx.invoked_subcommand not in DISTRIBUTED_COMMANDS:
        # One process answers: torchrun's others would repeat its output or share its stdin.
        if not _main_process():
            ctx.exit(0)
        click.echo(f"note: zoo {ctx.invoked_subcommand} runs in one process; the other {processes - 1} process(es) "
                   "torchrun started did nothing (torchrun is for `zoo train` and `zoo pretrain`)", err=True)


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of rows.")
@user_errors
def list_command(as_json: bool) -> None:
    """List every recipe, architecture and export format, with its status."""
    from zoo.catalog import catalog_rows

    rows = catalog_rows()
    if as_json:
        print_json([row.to_dict() for row in rows])
        return
    width = max((len(r.name) for r in rows), default=4)
    for row in rows:
        line = f"{row.name:<{width}}  {row.kind:<12}  {row.status:<12}  {row.distribution}"
        click.echo(line + (f"  {row.summary}" if row.summary else ""))
        if row.error:
            click.echo(f"{'':<{width}}  error: {row.error}")


@main.command("info")
@click.argument("name")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a hyperparameter.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def info_command(name: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Show the resolved hyperparameters of a recipe or architecture and its parameter count."""
    from zoo.recipes import find_recipe, resolve

    config = resolve(name, overrides)
    from zoo.model import build_classifier, count_parameters

    parameters = count_parameters(build_classifier(config, config.tokenizer.vocab_size))
    summary = find_recipe(name).summary
    info = config.to_dict() | {"parameters": parameters, "summary": summary}
    if as_json:
        print_json(info)
        return
    click.echo(f"{name}: architecture {config.architecture}, {parameters:,} parameters "
               f"(vocab {config.tokenizer.vocab_size})")
    if summary:
        click.echo(summary)
    for section, values in config.to_dict().items():
        if isinstance(values, dict):
            click.echo(f"[{section}]")
            for key, value in values.items():
                click.echo(f"  {key} = {value!r}")


data_option = click.option(
    "--data", "data", metavar="SRC", default=None,
    help="Data: a Hub id, a folder (Hub layout, or CSV/TSV/JSONL/parquet files named train/dev/test), one file, "
         "train=PATH,test=PATH[,validation=PATH], an aclImdb folder or aclImdb_v1.tar.gz "
         "(default: $ZOO_DATA, else stanfordnlp/imdb).",
)


def dataset_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--data and the options that say how to read it; the command receives one `spec` (zoo.data.DataSpec)."""
    options = [
        data_option,
        click.option("--data-config", metavar="NAME", default=None, help="The Hub dataset's config, if it has several."),
        click.option("--text-column", metavar="NAME", default=None,
                     help="Column of the texts (default: the first of text, sentence, review, content, document)."),
        click.option("--label-column", metavar="NAME", default=None,
                     help="Column of the labels (default: the first of label, labels, sentiment, class, target)."),
        click.option("--limit-train", type=click.IntRange(min=2), default=None, metavar="N",
                     help="Train on a seeded random N rows of the train split (a quick look)."),
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, data: str | None, data_config: str | None, text_column: str | None,
                label_column: str | None, limit_train: int | None, **kwargs: Any) -> Any:
        from zoo.data import DataSpec

        spec = DataSpec(data, data_config, text_column, label_column, limit_train)
        return command(*args, spec=spec, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options `zoo train` and `zoo pretrain` share: where the run goes, its settings, device, resume, output."""
    options = [
        click.option("--out", type=click.Path(path_type=Path), default=None,
                     help="Run directory (default runs/NAME-<timestamp>)."),
        click.option("--epochs", type=click.IntRange(min=1), default=None, help="Shortcut for --set train.epochs=N."),
        click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after N optimizer steps in all."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Shortcut for --set train.batch_size=N."),
        click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=None, help="Shortcut for --set train.lr=X."),
        click.option("--seed", type=click.IntRange(min=0, max=2**32 - 1), default=None,
                     help="Shortcut for --set train.seed=N."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override any hyperparameter (see `zoo info`)."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (default: all cores)."),
        click.option("--resume", type=click.Path(path_type=Path), default=None, help="Continue an interrupted run."),
        click.option("--allow-other-data", is_flag=True,
                     help="--resume with data whose fingerprint differs from the run's (other labels or splits)."),
        click.option("--no-progress", is_flag=True,
                     help="No progress bar (it is also off when stderr is not a terminal)."),
        click.option("--json", "as_json", is_flag=True, help="Make the last stdout line a JSON summary."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command("data")
@dataset_options
@click.option("--vocab-size", type=click.IntRange(min=64), default=None, help="Tokenizer vocabulary size (default 8192).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def data_command(spec, vocab_size: int | None, as_json: bool) -> None:
    """Load a dataset, build or reuse the tokenizer, and print its classes, split sizes and token lengths."""
    from zoo.config import TokenizerConfig
    from zoo.datastats import data_summary

    config = TokenizerConfig(**({"vocab_size": vocab_size} if vocab_size else {}))
    summary = data_summary(spec, config)
    if as_json:
        print_json(summary)
        return
    click.echo(f"source: {summary['source']} (text column {summary['columns'][0]!r}, "
               f"label column {summary['columns'][1]!r})")
    click.echo(f"classes: {', '.join(summary['classes'])}")
    for name, split in summary["splits"].items():
        counts = "  ".join(f"{label} {count:,}" for label, count in split["labels"].items())
        click.echo(f"  {name:<11} {split['rows']:>7,} texts  {counts}")
    tok = summary["tokenizer"]
    click.echo(f"tokenizer: vocab {tok['vocab_size']:,}, {tok['path']}")
    for name, stats in summary["tokens"].items():
        click.echo(f"  {name:<11} tokens: median {stats['median']:,.0f}, p90 {stats['p90']:,.0f}, "
                   f"max {stats['max']:,}, total {stats['total']:,}")


@main.command("train")
@click.argument("name", required=False)
@dataset_options
@run_options
@click.option("--init-from", type=click.Path(path_type=Path), default=None, metavar="PRETRAIN_RUN",
              help="Start the embedding and encoder from a `zoo pretrain` run (or one of its snapshots/*.pt), "
                   "and read text with its tokenizer.")
@user_errors
def train_command(name: str | None, spec, out: Path | None, epochs: int | None, max_steps: int | None,
                  batch_size: int | None, lr: float | None, seed: int | None, overrides: tuple[str, ...], device: str,
                  threads: int | None, resume: Path | None, allow_other_data: bool, no_progress: bool,
                  as_json: bool, init_from: Path | None) -> None:
    """Train a recipe or architecture, select on validation, evaluate once on test (when the data has one).

    Several processes: torchrun --nproc-per-node N $(command -v zoo) train NAME ...
    """
    config = _run_config(name, spec, out, max_steps, overrides, resume, init_from,
                         {"train.epochs": epochs, "train.batch_size": batch_size, "train.lr": lr, "train.seed": seed})
    from zoo.train import TrainRequest, train

    summary = train(TrainRequest(config=config, data=spec if resume is None else spec.source, out=out, device=device, threads=threads,
                                 max_steps=max_steps, progress=not no_progress and sys.stderr.isatty(), resume=resume,
                                 allow_other_data=allow_other_data, init_from=init_from))
    if not _main_process():
        return
    if not as_json:
        click.echo(f"run: {summary['run_dir']}")
        test = ("no test split" if summary["test_accuracy"] is None else
                f"test accuracy {summary['test_accuracy']:.4f}, macro-F1 {summary['test_macro_f1']:.4f}")
        click.echo(f"best validation accuracy {summary['best_validation_accuracy']:.4f} (epoch {summary['best_epoch']}), "
                   + test)
        click.echo(f"{summary['epochs']} epochs, {summary['steps']} steps, {summary['seconds']:.0f} s, "
                   f"{summary['tokens_per_second']:,.0f} tokens/s")
    else:
        print_json(summary)


def _run_config(name: str | None, spec, out: Path | None, max_steps: int | None, overrides: tuple[str, ...],
                resume: Path | None, init_from: Path | None, shortcuts: dict[str, Any]):
    """The resolved config of a new run (None for --resume), after checking the options go together."""
    from zoo.errors import ConfigError

    overrides = overrides + tuple(f"{k}={v}" for k, v in shortcuts.items() if v is not None)  # flags win
    if resume is None and name is None:
        raise ConfigError("name a recipe or architecture (see `zoo list`), or --resume a run directory")
    if resume is not None and (name is not None or overrides or out is not None or max_steps is not None
                               or init_from is not None
                               or (spec.config, spec.text_column, spec.label_column, spec.limit_train) != (None,) * 4):
        raise ConfigError("--resume continues a run with its own settings; drop NAME, --out, --max-steps, "
                          "--init-from, overrides and the data options other than --data")
    from zoo.recipes import resolve

    return resolve(name, overrides) if resume is None else None


def _main_process() -> bool:
    """False in torchrun's processes other than rank 0: they print nothing (rank 0 reports)."""
    import os

    return os.environ.get("RANK", "0") == "0"


@main.command("pretrain")
@click.argument("name", required=False)
@dataset_options
@run_options
@click.option("--budget", type=FiniteFloat(min=0, min_open=True), default=None, metavar="MINUTES",
              help="Stop after this many minutes of training (the learning-rate schedule follows the budget).")
@user_errors
def pretrain_command(name: str | None, spec, out: Path | None, epochs: int | None, max_steps: int | None,
                     budget: float | None, batch_size: int | None, lr: float | None, seed: int | None,
                     overrides: tuple[str, ...], device: str, threads: int | None, resume: Path | None,
                     allow_other_data: bool, no_progress: bool, as_json: bool) -> None:
    """Train an architecture's encoder as a language model on the train split plus the unlabelled texts.

    Then: zoo train RECIPE --init-from RUN. Several processes: torchrun --nproc-per-node N $(command -v zoo) pretrain ...
    """
    from zoo.errors import ConfigError

    if resume is not None and budget is not None:
        raise ConfigError("--resume keeps the run's own --budget; drop --budget")
    config = _run_config(name, spec, out, max_steps, overrides, resume, None,
                         {"train.epochs": epochs, "train.batch_size": batch_size, "train.lr": lr, "train.seed": seed})
    from zoo.pretrain import PretrainRequest, pretrain

    summary = pretrain(PretrainRequest(config=config, data=spec if resume is None else spec.source, out=out,
                                       device=device, threads=threads, max_steps=max_steps, budget_minutes=budget,
                                       progress=not no_progress and sys.stderr.isatty(), resume=resume,
                                       allow_other_data=allow_other_data))
    if not _main_process():
        return
    if as_json:
        print_json(summary)
        return
    click.echo(f"run: {summary['run_dir']}")
    click.echo(f"best validation perplexity {summary['best_validation_perplexity']:,.2f} (step {summary['best_step']}); "
               f"{summary['steps']} steps, {summary['seconds']:.0f} s, {summary['tokens_per_second']:,.0f} tokens/s")
    click.echo(f"next: zoo train RECIPE --init-from {summary['run_dir']}")


@main.command("evaluate")
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
    from zoo.predict import evaluate_run

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


@main.command("predict")
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
    from zoo.predict import chunked, input_lines, open_predictor

    predict = open_predictor(model, threads)
    batches = [list(texts)] if texts else chunked(input_lines(sys.stdin.buffer))
    for batch in batches:
        for text, result in zip(batch, predict(batch), strict=True):
            if as_json:
                print_json(result)
            else:
                preview = " ".join(text.split())
                click.echo(f"{result['label']}\t{result['probability']:.4f}\t{preview[:70]}{'...' if len(preview) > 70 else ''}")
        sys.stdout.flush()  # print as we go


@main.command("export")
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
    from zoo.registry import exporters

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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
