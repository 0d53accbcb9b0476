"""`zoo evaluate`: a trained run's metrics on one split of its data, and the confusion matrix drawn beside it."""

from __future__ import annotations

import sys
from pathlib import Path

from zoo.data.encoding import encode_splits
from zoo.errors import DataError
from zoo.inference.logits import set_torch_threads, split_logits
from zoo.inference.metrics import classification_metrics
from zoo.runs.loaders import open_run, run_classifier, run_data, run_tokenizer


def evaluate_run(run_path: Path, data: str | None, split: str, threads: int | None,
                 allow_other_data: bool = False) -> dict:
    """Metrics of a run on one split of its data; also draws the confusion matrix into the run directory."""
    from zoo.runs.pictures import write_confusion

    set_torch_threads(threads)
    run, record = open_run(run_path)
    tokenizer = run_tokenizer(run, record)
    model = run_classifier(run, record, tokenizer)
    splits = run_data(run, record, data, allow_other_data)
    if splits.classes != record.classes:
        raise DataError(f"the data at {splits.source} has the classes {splits.classes}, the run was trained on "
                        f"{record.classes}; evaluate it on data with the same classes")
    if split not in splits.named():
        raise DataError(f"the data at {splits.source} has no {split} split; try --split validation")
    encoded = encode_splits(splits, tokenizer, names=[split])[split]
    logits = split_logits(model, encoded, max_tokens=record.config.train.max_tokens)
    metrics = classification_metrics(logits, encoded.labels, record.classes)
    picture = run.file("confusion.png" if split == "test" else f"confusion-{split}.png")
    try:
        write_confusion(picture, metrics, f"{run.path.name}: {split} ({metrics['count']:,} texts)")
    except OSError as exc:  # a read-only run directory: the figures still count
        print(f"note: the confusion matrix picture could not be saved to {picture} ({exc.strerror or exc}); "
              "the figures are complete without it", file=sys.stderr)
        picture = None
    return {"run_dir": str(run.path), "split": split, **metrics, "confusion_png": str(picture) if picture else None}


