"""How a SentencePiece model turns normalized text into ids: one implementation for training, inference and the
text-in ONNX graph.

`--with-tokenizer` exports segment text inside onnxruntime with onnxruntime-extensions' SentencepieceTokenizer op,
which carries sentencepiece 0.1.99's encoder. The sentencepiece library from 0.2.0 on (the releases with wheels for
Python 3.12 and newer) breaks ties between equal-scoring segmentations differently: 345 of IMDB's 25,000 test
reviews (1.4%) get other ids. So wherever onnxruntime-extensions is installed, the zoo segments with that same op,
for training, evaluation, `zoo predict` and the export's own validation alike, and a text-in export gives exactly the
ids its run was trained on, whatever sentencepiece release trained the tokenizer. Without onnxruntime-extensions
(Python 3.14, where it has no wheels yet, and where text-in exports are not available either) the sentencepiece
library segments. `ZOO_SEGMENTER=sentencepiece` forces the library (for comparisons).

The name of the segmenter in use (`Segmenter.name`) is part of every encoded-split cache key and of a run's record.
"""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

SEGMENTER_ENV = "ZOO_SEGMENTER"
CONTRIB = "ai.onnx.contrib"  # onnxruntime-extensions' operator domain
CHUNK = 256  # texts per onnxruntime call; chunks run on several threads


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def extensions_library() -> str | None:
    """The onnxruntime-extensions ops library, found without importing the package (that takes seconds)."""
    spec = importlib.util.find_spec("onnxruntime_extensions")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("_extensions_pydll*"))
    if found:
        return str(found[0])
    from onnxruntime_extensions import get_library_path  # a layout this lookup does not know

    return get_library_path()


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def sentencepiece_op(model: bytes, text: str, tokens: str, splits: str, constants: dict[str, str]):
    """The onnxruntime-extensions node that segments strings `text` into flat `tokens` (int32) and per-text
    `splits` (int64 offsets), given constant names for its options (see `op_constants`)."""
    from onnx import helper

    inputs = [text, constants["nbest"], constants["alpha"], constants["false"], constants["false"], constants["false"]]
    return helper.make_node("SentencepieceTokenizer", inputs, [tokens, splits], domain=CONTRIB, model=model)


def op_constants() -> dict[str, object]:
    """The op's option values: one best segmentation (no sampling), no bos, no eos, not reversed."""
    import numpy as np

    return {"nbest": np.array([0], np.int64), "alpha": np.array([0.0], np.float32), "false": np.array([False])}


class Segmenter:
    """Segments normalized texts with one SentencePiece model; `name` says which implementation."""

    def __init__(self, model: bytes):
        self._library = None if os.environ.get(SEGMENTER_ENV) == "sentencepiece" else extensions_library()
        if self._library is None:
            import sentencepiece as spm

            self.name = f"sentencepiece-{_version('sentencepiece')}"
            self._processor = spm.SentencePieceProcessor(model_proto=model)
        else:
            self.name = f"onnxruntime-extensions-{_version('onnxruntime-extensions')}"
            self._session = _op_session(model, self._library)

    def encode(self, texts: Sequence[str], threads: int | None = None) -> list[list[int]]:
        threads = threads or default_threads()
        if self._library is None:
            return self._processor.encode(list(texts), out_type=int, num_threads=threads)
        chunks = [list(texts[i:i + CHUNK]) for i in range(0, len(texts), CHUNK)]
        if len(chunks) <= 1 or threads == 1:
            parts = [self._run(chunk) for chunk in chunks]
        else:
            with ThreadPoolExecutor(min(threads, len(chunks))) as pool:  # onnxruntime lets go of the GIL
                parts = list(pool.map(self._run, chunks))
        return [ids for part in parts for ids in part]

    def _run(self, texts: list[str]) -> list[list[int]]:
        import numpy as np

        tokens, splits = self._session.run(None, {"text": np.array(texts, dtype=object)})
        tokens = tokens.tolist()
        return [tokens[start:end] for start, end in zip(splits[:-1].tolist(), splits[1:].tolist())]


def _op_session(model: bytes, library: str):
    """An onnxruntime session of the SentencepieceTokenizer op alone, one thread per call."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    constants = {name: name for name in op_constants()}
    graph = helper.make_graph(
        [sentencepiece_op(model, "text", "tokens", "splits", constants)], "segmenter",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["texts"])],
        [helper.make_tensor_value_info("tokens", TensorProto.INT32, ["tokens"]),
         helper.make_tensor_value_info("splits", TensorProto.INT64, ["offsets"])],
        [numpy_helper.from_array(value, name) for name, value in op_constants().items()])
    graph_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(CONTRIB, 1)])
    graph_model.ir_version = min(graph_model.ir_version, 10)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.register_custom_ops_library(library)
    return ort.InferenceSession(graph_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
