"""`zoo train` and `zoo pretrain`: a run trained by the engine (zoo.training), new or resumed, in one process or
several under torchrun."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zoo.cli.options import dataset_options, main_process, print_json, run_options, user_errors
from zoo.errors import ConfigError


@click.command("train")
@click.argument("name", required=False)
@dataset_options
@run_options
@click.option("--init-from", type=click.Path(path_type=Path), default=None, metavar="PRETRAIN_RUN",
              help="Start the embedding and encoder from a `zoo pretrain` run (or one of its snapshots/*.pt), "
                   "and read text with its tokenizer.")
@user_errors
def train_command(name: str | None, spec, as_json: bool, init_from: Path | None, **options: Any) -> None:
    """Train a recipe or architecture, select on validation, evaluate once on test (when the data has one).

    Several processes: torchrun --nproc-per-node N $(command -v zoo) train NAME ...
    """
    from zoo.training.classify import train

    summary = train(_request(name, spec, init_from=init_from, **options))
    test = ("no test split" if summary and summary["test_accuracy"] is None else
            "test accuracy {test_accuracy:.4f}, macro-F1 {test_macro_f1:.4f}")
    _report(summary, as_json, "best validation accuracy {best_validation_accuracy:.4f} (epoch {best_epoch}), " + test,
            "{epochs} epochs, {steps} steps, {seconds:.0f} s, {tokens_per_second:,.0f} tokens/s")


@click.command("pretrain")
@click.argument("name", required=False)
@dataset_options
@run_options
@user_errors
def pretrain_command(name: str | None, spec, as_json: bool, **options: Any) -> None:
    """Train an architecture's encoder as a language model on the train split plus the unlabelled texts.

    Then: zoo train RECIPE --init-from RUN. Several processes: torchrun --nproc-per-node N $(command -v zoo) pretrain ...
    """
    from zoo.training.language import pretrain

    summary = pretrain(_request(name, spec, init_from=None, **options))
    _report(summary, as_json, "best validation perplexity {best_validation_perplexity:,.2f} (step {best_step}); {steps} "
            "steps, {seconds:.0f} s, {tokens_per_second:,.0f} tokens/s", "next: zoo train RECIPE --init-from {run_dir}")


def _report(summary: dict, as_json: bool, *lines: str) -> None:
    """The run's summary (the first process of a torchrun job alone): JSON, or `run: DIR` and the lines filled in."""
    if not main_process():
        return
    if as_json:
        print_json(summary)
        return
    click.echo(f"run: {summary['run_dir']}")
    for line in lines:
        click.echo(line.format(**summary))


def _request(name: str | None, spec, *, init_from: Path | None, out: Path | None, epochs: int | None,
             max_steps: int | None, budget: float | None, batch_size: int | None, lr: float | None, seed: int | None,
             overrides: tuple[str, ...], device: str, threads: int | None, resume: Path | None,
             allow_other_data: bool, no_progress: bool):
    """The run the options ask for: a new one (its config resolved) or --resume of an interrupted one, after
    checking the options go together."""
    from zoo.training.job import RunRequest

    shortcuts = {"train.epochs": epochs, "train.min_steps": 0 if epochs else None, "train.batch_size": batch_size,
                 "train.lr": lr, "train.seed": seed}
    overrides = overrides + tuple(f"{k}={v}" for k, v in shortcuts.items() if v is not None)  # flags win
    if resume is None and name is None:
        raise ConfigError("name a recipe or architecture (see `zoo list`), or --resume a run directory")
    if resume is not None and (name is not None or overrides or out is not None or max_steps is not None
                               or budget is not None or init_from is not None
                               or (spec.config, spec.text_column, spec.label_column, spec.limit_train) != (None,) * 4):
        raise ConfigError("--resume continues a run with its own settings (its --budget and --max-steps too); drop "
                          "NAME, --out, --max-steps, --budget, --init-from, overrides and the data options other than "
                          "--data")
    config, small_data = None, {}
    if resume is None:
        from zoo.registry.resolve import resolve, small_data_settings

        config, small_data = resolve(name, overrides), small_data_settings(name, overrides)
    return RunRequest(config=config, data=spec if resume is None else spec.source, out=out, device=device,
                      threads=threads, max_steps=max_steps, budget_minutes=budget, progress=not no_progress,
                      resume=resume, allow_other_data=allow_other_data, init_from=init_from, small_data=small_data)
