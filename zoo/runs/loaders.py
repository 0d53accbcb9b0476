"""What a finished (or resumed) run is made of, rebuilt from its directory and record: its tokenizer, its data,
its classifier with the best weights. Each is checked against what the record says the run was trained with."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.data.splits import DataSpec, Splits, load_splits
from zoo.data.tokenizer import Tokenizer
from zoo.errors import CheckpointError, DataError
from zoo.runs.layout import CONFIG, TOKENIZER, WEIGHTS, RunDir, load_torch
from zoo.runs.record import RunRecord, read_record

if TYPE_CHECKING:
    from zoo.models.classifier import Classifier


def open_run(path: str | Path) -> tuple[RunDir, RunRecord]:
    """A run directory and its record, read once."""
    run = RunDir.open(path)
    return run, read_record(run)


def run_tokenizer(run: RunDir, record: RunRecord) -> Tokenizer:
    """The run's tokenizer, checked against the sha256 recorded at training time."""
    tokenizer = Tokenizer(run.file(TOKENIZER))
    expected = record.tokenizer.get("sha256")
    if expected is not None and tokenizer.sha256 != expected:
        raise CheckpointError(
            f"{run.file(TOKENIZER)} is not the tokenizer this run was trained with (sha256 "
            f"{tokenizer.sha256[:12]}..., {CONFIG} records {str(expected)[:12]}...): it was replaced, perhaps "
            "by an export into this folder. Restore the run's own tokenizer.model (or train the run again)")
    _note_other_segmenter(record.tokenizer.get("segmenter"), tokenizer, run.path)
    return tokenizer


def _note_other_segmenter(recorded: str | None, tokenizer: Tokenizer, run: Path) -> None:
    """Say so when this environment segments text with another implementation than the run was trained with
    (zoo.data.segmenter: about 1.4% of IMDB reviews get other ids)."""
    if recorded is None:
        return
    family = lambda name: name.rsplit("-", 1)[0]  # noqa: E731 (the implementation, without its version)
    current = tokenizer.segmenter.name
    if family(current) != family(recorded):
        print(f"note: {run} was trained on text segmented by {recorded}; here {current} segments it, which gives "
              "other ids for about 1% of long texts (install onnxruntime-extensions where it has wheels to match)",
              file=sys.stderr)


def run_data_spec(record: RunRecord, data: str | None = None) -> DataSpec:
    """The run's data as the user named it, with its source replaced by `data` when given."""
    spec = DataSpec.from_dict(record.data)
    return replace(spec, source=data) if data else spec


def run_data(run: RunDir, record: RunRecord, data: str | None, allow_other_data: bool = False,
             **options: Any) -> Splits:
    """The run's data (or the source `data`), refused when its fingerprint differs from the run's."""
    options.setdefault("with_unsupervised", bool(record.data.get("with_unsupervised")))  # part of the fingerprint
    splits = load_splits(run_data_spec(record, data), **options)
    expected = record.data.get("fingerprint")
    if expected and splits.fingerprint != expected and not allow_other_data:
        raise DataError(
            f"the data at {splits.source} is not the data {run.path} was trained on (fingerprint "
            f"{splits.fingerprint}, the run has {expected}): other labels, another test split or a different "
            "train/validation carve would give wrong figures. Pass the run's own --data, or add "
            "--allow-other-data to use this data anyway")
    return splits


def run_classifier(run: RunDir, record: RunRecord, tokenizer: Tokenizer, device: str = "cpu") -> "Classifier":
    """The classifier with the run's best weights, in eval mode."""
    import torch

    from zoo.models.build import build_classifier

    if record.kind == "pretrain":
        raise CheckpointError(f"{run.path} is a `zoo pretrain` run (a language model, not a classifier): "
                              f"fine-tune it with `zoo train RECIPE --init-from {run.path}`, then use that run")
    model = build_classifier(record.config, tokenizer.vocab_size, len(record.classes))
    state = load_torch(run.file(WEIGHTS))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{run.file(WEIGHTS)} is not a state dict of tensors; it was not written by the zoo")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{run.file(WEIGHTS)} does not fit the model in {CONFIG}: {exc}") from None
    return model.to(device).eval()


def load_classifier(path: str | Path, device: str = "cpu") -> "Classifier":
    """The classifier of the run at `path`, with its best weights (its tokenizer checked)."""
    run, record = open_run(path)
    return run_classifier(run, record, run_tokenizer(run, record), device)
