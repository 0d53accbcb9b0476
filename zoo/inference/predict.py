"""`zoo predict`: classify texts with a trained run directory (PyTorch) or an exported .onnx model (onnxruntime).

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

from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from zoo.errors import CheckpointError

STDIN_CHUNK = 256  # lines predicted together when reading stdin

Predictor = Callable[[list[str]], list[dict]]


def open_predictor(model_path: Path, threads: int | None = None) -> Predictor:
    """A function from texts to [{"label", "probability" (of that label), "probabilities" (of every class)}].

    The model is loaded once.
    """
    if model_path.suffix == ".onnx":
        from zoo.inference.runtime import OnnxClassifier

        return OnnxClassifier(model_path, threads=threads).predict
    from zoo.inference.logits import set_torch_threads, text_logits
    from zoo.inference.metrics import predictions
    from zoo.runs.loaders import open_run, run_classifier, run_tokenizer

    if not model_path.exists():
        raise CheckpointError(f"{model_path} does not exist; pass a run directory or an exported .onnx file")
    set_torch_threads(threads)
    run, record = open_run(model_path)
    tokenizer = run_tokenizer(run, record)
    model = run_classifier(run, record, tokenizer)
    max_tokens, classes = record.config.train.max_tokens, record.classes
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


def line_chunks(lines: Iterator[str], size: int = STDIN_CHUNK) -> Iterator[list[str]]:
    """Lines in lists of `size`: stdin is predicted a chunk at a time, in bounded memory."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
