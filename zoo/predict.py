"""Evaluate and predict with a trained run directory (PyTorch) or an exported .onnx model (onnxruntime).

Inputs to predict: any text. On stdin, texts are separated by `\\n` alone (a
trailing `\\r` is dropped, so CRLF files work); every other character, U+0085,
U+2028, form feeds and NUL included, is part of the text, so there is exactly
one prediction per input line, in order. Non-UTF-8 bytes become U+FFFD. stdin
is read and answered in chunks, so any number of lines runs in bounded memory.
Texts over 1,000,000 characters are cut there; an empty or whitespace-only
text is a review of zero tokens, which the model scores as a single padding
step (a defined, input-independent probability).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from zoo.errors import CheckpointError

STDIN_CHUNK = 256  # lines predicted together when reading stdin

Predictor = Callable[[list[str]], list[dict]]


def _set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def evaluate_run(run_path: Path, data: str | None, split: str, threads: int | None,
                 allow_other_data: bool = False) -> dict:
    """Metrics of a run on one split of its data; also draws the confusion matrix into the run directory."""
    from zoo.encoded import encode_splits
    from zoo.errors import DataError
    from zoo.evaluate import split_logits
    from zoo.metrics import classification_metrics
    from zoo.report import write_confusion
    from zoo.rundir import RunDir

    _set_threads(threads)
    run = RunDir.open(run_path)
    model = run.load_model()
    config = run.config()
    splits = run.load_data(data, allow_other_data)
    if splits.classes != run.classes():
        raise DataError(f"the data at {splits.source} has the classes {splits.classes}, the run was trained on "
                        f"{run.classes()}; evaluate it on data with the same classes")
    if split not in splits.named():
        raise DataError(f"the data at {splits.source} has no {split} split; try --split validation")
    encoded = encode_splits(splits, run.tokenizer(), names=[split])[split]
    logits = split_logits(model, encoded, max_tokens=config.train.max_tokens)
    metrics = classification_metrics(logits, encoded.labels, run.classes())
    picture = run.file("confusion.png" if split == "test" else f"confusion-{split}.png")
    try:
        write_confusion(picture, metrics, f"{run.path.name}: {split} ({metrics['count']:,} texts)")
    except OSError as exc:  # a read-only run directory: the figures still count
        print(f"note: the confusion matrix picture could not be saved to {picture} ({exc.strerror or exc}); "
              "the figures are complete without it", file=sys.stderr)
        picture = None
    return {"run_dir": str(run.path), "split": split, **metrics, "confusion_png": str(picture) if picture else None}


def open_predictor(model_path: Path, threads: int | None = None) -> Predictor:
    """A function from texts to [{"label", "probability" (of that label), "probabilities" (of every class)}].

    The model is loaded once.
    """
    if model_path.suffix == ".onnx":
        from zoo.runtime import OnnxClassifier

        return OnnxClassifier(model_path, threads=threads).predict
    from zoo.evaluate import text_logits
    from zoo.metrics import predictions
    from zoo.rundir import RunDir

    if not model_path.exists():
        raise CheckpointError(f"{model_path} does not exist; pass a run directory or an exported .onnx file")
    _set_threads(threads)
    run = RunDir.open(model_path)
    model = run.load_model()
    tokenizer = run.tokenizer()
    max_tokens, classes = run.config().train.max_tokens, run.classes()
    return lambda texts: predictions(text_logits(model, tokenizer, texts, max_tokens), classes)


def predict_texts(model_path: Path, texts: list[str], threads: int | None = None) -> list[dict]:
    """open_predictor(model_path)(texts)."""
    return open_predictor(model_path, threads)(texts)


def input_lines(stream: BinaryIO) -> Iterator[str]:
    """The texts of a byte stream: split on b"\\n" only, a trailing "\\r" dropped, bad UTF-8 replaced."""
    for raw in stream:  # a binary stream's lines end at b"\n" and nowhere else
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        yield raw.decode("utf-8", errors="replace")


def chunked(lines: Iterator[str], size: int = STDIN_CHUNK) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
