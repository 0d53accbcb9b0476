"""Inference on exported models with onnxruntime, numpy and sentencepiece only (no torch).

    from zoo.inference.runtime import OnnxClassifier
    classifier = OnnxClassifier("model.onnx", threads=2)
    classifier.predict(["great film", "dull"])
    # [{"label": "pos", "probability": 0.97, "probabilities": {"neg": 0.03, "pos": 0.97}}, ...]

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
from typing import Iterator, Sequence

import numpy as np

from zoo.data.batching import evaluation_batches, pad_rows, truncate
from zoo.data.segmenter import extensions_library
from zoo.data.text import text_graph_input
from zoo.data.tokenizer import Tokenizer
from zoo.errors import CheckpointError
from zoo.inference.metrics import logits_shape, predictions
from zoo.runs.record import BINARY

# At most 64 texts and 8,192 padded tokens a batch: texts of similar length run together, so a batch of long
# reviews is small and one of short texts large (on IMDB test reviews at 2 threads: 855 reviews/s, against 442 with
# a 65,536-token cap, which padded 64 reviews of ~230 tokens to their longest).
BATCH, BATCH_TOKENS = 64, 8 * 1024
BATCH_CHARS = BATCH_TOKENS * 5  # text-in models batch by characters (~5 a token): their tokens are not known yet


def open_session(model: str | Path | bytes, threads: int | None = None, spin: bool = True):
    """An onnxruntime CPU session with all graph optimizations; threads None or 0: onnxruntime's default.

    `model` is a path or serialized bytes. A model that uses onnxruntime-extensions'
    ops (the text front end of `--with-tokenizer` exports) gets them registered.
    `spin=False` lets onnxruntime's threads sleep between runs instead of spinning: a
    server, whose event loop needs the same cores, answers about 20% more requests so.
    """
    import onnxruntime as ort

    def session(extensions: str | None = None):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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
                              "install them with `pip install onnxruntime-extensions` (it has no wheels for Python 3.14 yet: "
                              "use Python 3.11 to 3.13, or an ids-in export with its tokenizer.model)")
    return session(library)


def check_external_data(path: Path) -> None:
    """Refuse a model whose tensors point at external data outside its own folder (or through a link out of it).

    onnxruntime versions differ in whether they check this; a crafted model could otherwise read any file
    the process can read.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a loadable ONNX model ({type(exc).__name__}: {exc}); export it again") from None
    folder = path.parent.resolve()
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {entry.key: entry.value for entry in tensor.external_data}.get("location", "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            raise CheckpointError(f"{path} refers to external data {location!r} outside its own folder; "
                                  "refusing to load it (a model's external data must sit beside it)")


def _tensors(graph) -> Iterator:
    """Every tensor of a graph: initializers, sparse initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def _checked_metadata(path: Path, metadata: dict[str, str]) -> tuple[list[str], int, str]:
    """(labels, max_tokens, tokenizer file name) from a model's metadata, or a CheckpointError naming the bad value."""
    def bad(key: str, why: str) -> CheckpointError:
        return CheckpointError(f"{path}: metadata {key}={metadata.get(key)!r} {why}; export the model again")

    try:
        labels = json.loads(metadata.get("labels", json.dumps(BINARY)))
    except json.JSONDecodeError:
        raise bad("labels", "is not JSON") from None
    if not (isinstance(labels, list) and 2 <= len(labels) <= 100_000 and all(isinstance(x, str) and x for x in labels)
            and len(set(labels)) == len(labels)):
        raise bad("labels", "is not a list of two or more distinct class names")
    text = metadata.get("max_tokens", "0")
    if not text.isdigit() or int(text) > 10**9:
        raise bad("max_tokens", "is not a whole number >= 0")
    name = metadata.get("tokenizer_file", "tokenizer.model")
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise bad("tokenizer_file", "is not a plain file name beside the model")
    return labels, int(text), name


class OnnxClassifier:
    """An exported model, loaded once: `predict(texts)` and `logits(texts)`, in batches of up to `batch_size` texts
    of similar length."""

    def __init__(self, path: str | Path, threads: int | None = None, tokenizer: str | Path | None = None,
                 batch_size: int = BATCH, spin: bool = True):
        self.path = Path(path)
        self.batch_size = batch_size
        if not self.path.is_file():
            raise CheckpointError(f"{self.path} does not exist; export one with `zoo export RUN --format onnx`")
        check_external_data(self.path)
        try:
            self.session = open_session(self.path, threads, spin)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{self.path} is not a loadable ONNX model ({type(exc).__name__}: {exc}); "
                                  "export it again") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if "tokenizer_sha256" not in self.metadata:
            raise CheckpointError(f"{self.path} was not exported by the zoo (no tokenizer metadata)")
        self.labels, self.max_tokens, tokenizer_file = _checked_metadata(self.path, self.metadata)
        self.takes_text = self.metadata.get("input") == "text"  # a --with-tokenizer export carries its tokenizer
        self.tokenizer = None if self.takes_text else self._tokenizer(
            Path(tokenizer) if tokenizer else self.path.with_name(tokenizer_file))

    def _run(self, feed: dict, rows: int) -> np.ndarray:
        try:
            logits = self.session.run(["logits"], feed)[0]
        except Exception as exc:
            raise CheckpointError(f"onnxruntime cannot run {self.path} ({type(exc).__name__}: {exc}); "
                                  "export the model again with `zoo export`") from None
        expected = logits_shape(rows, len(self.labels))
        if logits.shape != expected:
            raise CheckpointError(f"{self.path} returned logits of shape {list(logits.shape)} for {rows} texts, "
                                  f"expected {list(expected)}; export the model again with `zoo export`")
        return logits

    def _tokenizer(self, tokenizer_path: Path) -> Tokenizer:
        if not tokenizer_path.is_file():
            raise CheckpointError(f"{tokenizer_path} is missing: the tokenizer must sit beside {self.path.name}")
        if hashlib.sha256(tokenizer_path.read_bytes()).hexdigest() != self.metadata["tokenizer_sha256"]:
            raise CheckpointError(f"{tokenizer_path} is not the tokenizer {self.path.name} was exported with "
                                  "(checksum mismatch); copy the run's tokenizer.model beside it")
        return Tokenizer(tokenizer_path)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        if self.takes_text:
            return self._logits_from_texts([text_graph_input(t) for t in texts])
        rows = [truncate(np.asarray(ids, dtype=np.int64), self.max_tokens) for ids in self.tokenizer.encode(list(texts))]
        return self.logits_from_ids(rows)

    def logits_from_ids(self, rows: list[np.ndarray]) -> np.ndarray:
        if self.takes_text:
            raise CheckpointError(f"{self.path.name} takes raw text (a --with-tokenizer export), not token ids")
        out = self._empty(len(rows))
        if not rows:
            return out
        lengths = np.array([max(len(r), 1) for r in rows])
        for batch in evaluation_batches(lengths, self.batch_size, BATCH_TOKENS):
            ids, lens = pad_rows([rows[i] for i in batch])
            out[batch] = self._run({"input_ids": ids, "lengths": lens}, len(batch))
        return out

    def _logits_from_texts(self, texts: list[str]) -> np.ndarray:
        """Text-in models: batches of texts of similar length (in characters; tokens are not known yet)."""
        out = self._empty(len(texts))
        lengths = np.array([max(len(t), 1) for t in texts])
        for batch in evaluation_batches(lengths, self.batch_size, BATCH_CHARS):
            out[batch] = self._run({"text": np.array([texts[i] for i in batch], dtype=object)}, len(batch))
        return out

    def _empty(self, rows: int) -> np.ndarray:
        return np.empty(logits_shape(rows, len(self.labels)), dtype=np.float64)

    def predict(self, texts: Sequence[str]) -> list[dict]:
        """[{"label", "probability" (of that label), "probabilities" (of every class)}] per text."""
        return predictions(self.logits(texts), self.labels)
