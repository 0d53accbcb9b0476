"""Inference on exported models with onnxruntime, numpy and sentencepiece only (no torch).

    from zoo.runtime import OnnxClassifier
    classifier = OnnxClassifier("model.onnx", threads=2)
    classifier.predict(["great film", "dull"])  # [{"label": "pos", "probability": 0.97}, ...]

The tokenizer is read from beside the .onnx file (the name in its metadata)
and checked against the checksum the export recorded; a `--with-tokenizer`
export takes raw text and carries its tokenizer (onnxruntime-extensions ops). Texts are normalized and
truncated exactly as in training, then bucketed by length for throughput; with
an fp32 export each review's result does not depend on its batch (int8 exports
quantize activations per batch, so their logits move a little with it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from zoo.batching import evaluation_batches, pad_rows, truncate
from zoo.errors import CheckpointError
from zoo.metrics import predictions
from zoo.tokenizer import MAX_TEXT_CHARS, Tokenizer

BATCH, BATCH_TOKENS, BATCH_CHARS = 64, 64 * 1024, 64 * 1024 * 5  # ~5 characters a token


def open_session(model: str | Path | bytes, threads: int | None = None):
    """An onnxruntime CPU session with all graph optimizations; threads None or 0: onnxruntime's default.

    `model` is a path or serialized bytes. A model that uses onnxruntime-extensions'
    ops (the text front end of `--with-tokenizer` exports) gets them registered.
    """
    import onnxruntime as ort

    def session(extensions: str | None = None):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if extensions:
            options.register_custom_ops_library(extensions)
        return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                    providers=["CPUExecutionProvider"])

    try:
        return session()
    except Exception as exc:
        if "ai.onnx.contrib" not in str(exc):
            raise
    library = extensions_library()
    if library is None:
        raise CheckpointError("this model takes raw text through onnxruntime-extensions ops; "
                              "install them with `pip install onnxruntime-extensions`")
    return session(library)


def extensions_library() -> str | None:
    """The onnxruntime-extensions ops library, found without importing the package (that takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime_extensions")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("_extensions_pydll*"))
    if found:
        return str(found[0])
    from onnxruntime_extensions import get_library_path  # a layout this lookup does not know

    return get_library_path()


class OnnxClassifier:
    def __init__(self, path: str | Path, threads: int | None = None, tokenizer: str | Path | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path} does not exist; export one with `zoo export RUN --format onnx`")
        try:
            self.session = open_session(self.path, threads)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{self.path} is not a loadable ONNX model ({type(exc).__name__}: {exc}); "
                                  "export it again") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if "tokenizer_sha256" not in self.metadata:
            raise CheckpointError(f"{self.path} was not exported by the zoo (no tokenizer metadata)")
        self.labels = json.loads(self.metadata.get("labels", '["neg", "pos"]'))
        self.max_tokens = int(self.metadata.get("max_tokens", "0"))
        self.takes_text = self.metadata.get("input") == "text"  # a --with-tokenizer export carries its tokenizer
        self.tokenizer = None if self.takes_text else self._tokenizer(Path(tokenizer) if tokenizer else None)

    def _tokenizer(self, tokenizer_path: Path | None) -> Tokenizer:
        tokenizer_path = tokenizer_path or self.path.with_name(self.metadata.get("tokenizer_file", "tokenizer.model"))
        if not tokenizer_path.is_file():
            raise CheckpointError(f"{tokenizer_path} is missing: the tokenizer must sit beside {self.path.name}")
        if hashlib.sha256(tokenizer_path.read_bytes()).hexdigest() != self.metadata["tokenizer_sha256"]:
            raise CheckpointError(f"{tokenizer_path} is not the tokenizer {self.path.name} was exported with "
                                  "(checksum mismatch); copy the run's tokenizer.model beside it")
        return Tokenizer(tokenizer_path)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        if self.takes_text:
            return self._logits_from_texts([t[:MAX_TEXT_CHARS] for t in texts])
        rows = [truncate(np.asarray(ids, dtype=np.int64), self.max_tokens) for ids in self.tokenizer.encode(list(texts))]
        return self.logits_from_ids(rows)

    def logits_from_ids(self, rows: list[np.ndarray]) -> np.ndarray:
        if self.takes_text:
            raise CheckpointError(f"{self.path.name} takes raw text (a --with-tokenizer export), not token ids")
        out = np.empty(len(rows), dtype=np.float64)
        if not rows:
            return out
        lengths = np.array([max(len(r), 1) for r in rows])
        for batch in evaluation_batches(lengths, BATCH, BATCH_TOKENS):
            ids, lens = pad_rows([rows[i] for i in batch])
            out[batch] = self.session.run(["logits"], {"input_ids": ids, "lengths": lens})[0]
        return out

    def _logits_from_texts(self, texts: list[str]) -> np.ndarray:
        """Text-in models: batches of texts of similar length (in characters; tokens are not known yet)."""
        out = np.empty(len(texts), dtype=np.float64)
        for batch in evaluation_batches(np.array([max(len(t), 1) for t in texts]), BATCH, BATCH_CHARS):
            out[batch] = self.session.run(["logits"], {"text": np.array([texts[i] for i in batch], dtype=object)})[0]
        return out

    def predict(self, texts: Sequence[str]) -> list[dict]:
        return predictions(self.logits(texts))
