"""Evaluate and predict with a trained run directory (PyTorch) or an exported .onnx model (onnxruntime).

Inputs to predict: any text. Non-UTF-8 bytes on stdin become U+FFFD; texts
over 1,000,000 characters are cut there; an empty or whitespace-only text is a
review of zero tokens, which the model scores as a single padding step (a
defined, input-independent probability).
"""

from __future__ import annotations

from pathlib import Path

from zoo.errors import CheckpointError


def _set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def evaluate_run(run_path: Path, data: str | None, split: str, threads: int | None) -> dict:
    from zoo.data import load_imdb
    from zoo.encoded import encode_splits
    from zoo.evaluate import split_logits
    from zoo.metrics import classification_metrics
    from zoo.rundir import TOKENIZER, RunDir
    from zoo.tokenizer import Tokenizer

    _set_threads(threads)
    run = RunDir.open(run_path)
    model = run.load_model()
    config = run.config()
    source = data or run.read_info().get("data", {}).get("source")
    encoded = encode_splits(load_imdb(source), Tokenizer(run.file(TOKENIZER)), names=[split])[split]
    metrics = classification_metrics(split_logits(model, encoded, max_tokens=config.train.max_tokens), encoded.labels)
    return {"run_dir": str(run.path), "split": split, **metrics}


def predict_texts(model_path: Path, texts: list[str], threads: int | None = None) -> list[dict]:
    """[{"label": "pos" | "neg", "probability": P(pos)}] for each text."""
    if model_path.suffix == ".onnx":
        from zoo.runtime import OnnxClassifier

        return OnnxClassifier(model_path, threads=threads).predict(texts)
    from zoo.evaluate import text_logits
    from zoo.metrics import predictions
    from zoo.rundir import TOKENIZER, RunDir
    from zoo.tokenizer import Tokenizer

    if not model_path.exists():
        raise CheckpointError(f"{model_path} does not exist; pass a run directory or an exported .onnx file")
    _set_threads(threads)
    run = RunDir.open(model_path)
    model = run.load_model()
    tokenizer = Tokenizer(run.file(TOKENIZER))
    return predictions(text_logits(model, tokenizer, texts, run.config().train.max_tokens))
