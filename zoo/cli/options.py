"""What the commands share: user errors printed without a traceback, JSON output, finite floats, the data options
and the options of a training run."""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import click

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


data_option = click.option(
    "--data", "data", metavar="SRC", default=None,
    help="Data: a Hub id, a folder (Hub layout, or CSV/TSV/JSONL/parquet files named train/dev/test), one file, "
         "train=PATH,test=PATH[,validation=PATH], an aclImdb folder or aclImdb_v1.tar.gz "
         "(default: $ZOO_DATA, else stanfordnlp/imdb).",
)


def dataset_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--data and the options that say how to read it; the command receives one `spec` (zoo.data.splits.DataSpec)."""
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
        from zoo.data.splits import DataSpec

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
        click.option("--epochs", type=click.IntRange(min=1), default=None,
                     help="Exactly N epochs (--set train.epochs=N train.min_steps=0: no lengthening on small data)."),
        click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after N optimizer steps in all."),
        click.option("--budget", type=FiniteFloat(min=0, min_open=True), default=None, metavar="MINUTES",
                     help="Stop after this many minutes of training (the learning-rate schedule follows the budget)."),
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
                     help="Nothing on stderr while training: no progress bar in a terminal, no per-epoch lines in a log."),
        click.option("--json", "as_json", is_flag=True, help="Make the last stdout line a JSON summary."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def main_process() -> bool:
    """False in torchrun's processes other than rank 0: they print nothing (rank 0 reports)."""
    return os.environ.get("RANK", "0") == "0"


