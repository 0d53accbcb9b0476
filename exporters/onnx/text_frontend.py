"""The text front end of `--with-tokenizer` exports: raw strings in, the classifier's `input_ids`/`lengths` out.

Written in ONNX with two onnxruntime-extensions ops (domain ai.onnx.contrib):
StringRegexReplace applies the zoo's normalization (HTML line breaks become a
space, the same pattern as zoo.data.text.normalize_text, written for RE2), and
SentencepieceTokenizer carries the run's tokenizer.model and applies its NFKC
normalizer and unigram segmentation: the same op zoo.data.segmenter trains and
predicts with, so the graph reads a text as its run did. Standard ops then turn
the ragged token list into the padded batch training used: head + tail truncation to
max_tokens, pad id 0, and an empty text as one pad token of length 1
(zoo.data.batching.pad_rows).

Not in the graph: the 1,000,000-character cut zoo.data.text applies before
encoding, and NUL becoming a space (onnxruntime-extensions reads each string
only up to its first NUL); zoo.inference.runtime applies both before calling the
session (zoo.data.text.text_graph_input).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from zoo.data.segmenter import CONTRIB, op_constants, sentencepiece_op
from zoo.data.text import re2_break_pattern
from zoo.plugin_api.onnx import Graph


def text_frontend(tokenizer_model: bytes, max_tokens: int, opset: int) -> onnx.ModelProto:
    """A model from `text` [batch] string to `input_ids` [batch, sequence] and `lengths` [batch], both int64."""
    graph = Graph(opset)
    strings = lambda values: graph.const(np.array(values, dtype=object), "pattern", dtype=object)
    clean = graph.op("StringRegexReplace", ["text", strings([re2_break_pattern()]), strings([" "])],
                     domain=CONTRIB, global_replace=1)
    constants = {name: graph.const(value, name, dtype=value.dtype) for name, value in op_constants().items()}
    tokens, splits = graph.fresh("tokens"), graph.fresh("splits")
    graph.nodes.append(sentencepiece_op(tokenizer_model, clean, tokens, splits, constants))  # the zoo's own segmenter
    # Pad id 0 goes first, so that index 0 is padding even when every text is empty.
    tokens = graph.op("Concat", [graph.ints([0]), graph.op("Cast", [tokens], to=TensorProto.INT64)], axis=0)
    big = graph.ints([np.iinfo(np.int64).max])
    starts = graph.op("Slice", [splits, graph.ints([0]), graph.ints([-1])])
    raw = graph.op("Sub", [graph.op("Slice", [splits, graph.ints([1]), big]), starts])
    kept = graph.op("Min", [raw, graph.ints([max_tokens])]) if max_tokens else raw
    graph.op("Max", [kept, graph.ints([1])], name="lengths")
    steps = graph.op("Range", [graph.ints(0), graph.op("ReduceMax", ["lengths"], keepdims=0), graph.ints(1)])
    row = graph.op("Unsqueeze", [steps, graph.ints([0])])  # [1, T]
    column = lambda x: graph.op("Unsqueeze", [x, graph.ints([1])])  # [B, 1]
    source = row
    if max_tokens:  # head + tail: step j >= head reads raw position j + (raw - kept)
        head = max_tokens - max_tokens // 2
        source = graph.op("Where", [graph.op("Less", [row, graph.ints(head)]), row,
                                    graph.op("Add", [row, column(graph.op("Sub", [raw, kept]))])])
    index = graph.op("Add", [graph.op("Add", [column(starts), source]), graph.ints(1)])
    index = graph.op("Where", [graph.op("Less", [row, column(kept)]), index, graph.ints(0)])
    graph.op("Gather", [tokens, index], axis=0, name="input_ids")
    inputs = [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])]
    outputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
               helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"])]
    model = graph.model(inputs, outputs, {})
    model.opset_import.append(helper.make_opsetid(CONTRIB, 1))
    return model


def with_text_frontend(classifier: onnx.ModelProto, tokenizer_model: bytes, max_tokens: int, opset: int) -> onnx.ModelProto:
    """One model from raw strings to logits: the front end feeding `classifier`, its metadata kept."""
    frontend = text_frontend(tokenizer_model, max_tokens, opset)
    frontend.ir_version = classifier.ir_version
    merged = onnx.compose.merge_models(frontend, classifier, io_map=[("input_ids", "input_ids"), ("lengths", "lengths")],
                                       prefix1="text_", prefix2="")
    merged.graph.input[0].name = "text"
    for node in merged.graph.node:
        node.input[:] = ["text" if name == "text_text" else name for name in node.input]
    helper.set_model_props(merged, {p.key: p.value for p in classifier.metadata_props} | {"input": "text"})
    return merged
