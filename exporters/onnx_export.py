"""Run directory -> model.onnx (+ tokenizer.model beside it), validated against PyTorch.

The graph takes `input_ids` [batch, sequence] int64 and `lengths` [batch]
int64 and returns `logits` [batch], the positive-class logit. Architectures
with a native lowering (`Architecture.lower_onnx`) map onto ONNX's fused
recurrent ops, with the embedding, pooling and head written here; the others go
through torch.onnx (TorchScript-based exporter) as a whole.

Validation, after every export: onnxruntime against PyTorch on real validation
reviews, alone (batch 1), in batches of 7 and 64 in random order (short and
long mixed), and in one batch of the shortest beside the longest. The largest
|logit difference| must stay within atol; otherwise the file is renamed
`<name>.failed.onnx` and the export fails with the worst case named.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from zoo import __version__
from zoo.batching import pad_rows, truncate
from zoo.data import load_imdb
from zoo.encoded import encode_splits
from zoo.errors import ExportError, ZooError
from zoo.exporters.graph import Graph, float_output, int64_input
from zoo.exporters.lowering import step_positions
from zoo.registry import architectures
from zoo.rundir import TOKENIZER, RunDir
from zoo.runtime import open_session
from zoo.tokenizer import Tokenizer

DEFAULT_OPSET, DEFAULT_ATOL, VALIDATION_REVIEWS = 17, 1e-4, 256
NORMALIZATION = "HTML line breaks (<br />, <br/>, <br>, any case) become one space; then SentencePiece NFKC"


def lower_pooling(graph: Graph, outputs: str, lengths: str, kinds: list[str], bidirectional: bool) -> str:
    """ONNX of zoo.model.Pooling: max / mean / last over each review's valid steps, concatenated."""
    positions = step_positions(graph, outputs)
    column = graph.op("Unsqueeze", [lengths, graph.ints([1])])  # [B, 1]
    pooled = []
    for kind in kinds:
        if kind == "max":
            valid = graph.op("Unsqueeze", [graph.op("Less", [positions, column]), graph.ints([2])])
            masked = graph.op("Where", [valid, outputs, graph.const(-np.inf, "neg_inf")])
            pooled.append(graph.reduce("ReduceMax", masked, 1))
        elif kind == "mean":
            total = graph.reduce("ReduceSum", outputs, 1)
            pooled.append(graph.op("Div", [total, graph.op("Cast", [column], to=1)]))
        else:
            last = graph.op("Sub", [column, graph.ints(1)])
            pick = graph.op("Cast", [graph.op("Unsqueeze", [graph.op("Equal", [positions, last]), graph.ints([2])])], to=1)
            at_end = graph.reduce("ReduceSum", graph.op("Mul", [outputs, pick]), 1)
            if bidirectional:  # the backward half ends at step 0
                first = graph.op("Squeeze", [graph.op("Slice", [outputs, graph.ints([0]), graph.ints([1]), graph.ints([1])]),
                                             graph.ints([1])])
                half = graph.op("Div", [graph.op("Gather", [graph.op("Shape", [outputs]), graph.ints(2)], axis=0), graph.ints(2)])
                half = graph.op("Unsqueeze", [half, graph.ints([0])])
                big = graph.ints([np.iinfo(np.int64).max])
                forward = graph.op("Slice", [at_end, graph.ints([0]), half, graph.ints([1])])
                backward = graph.op("Slice", [first, half, big, graph.ints([1])])
                at_end = graph.op("Concat", [forward, backward], axis=1)
            pooled.append(at_end)
    return pooled[0] if len(pooled) == 1 else graph.op("Concat", pooled, axis=1)


def lower_head(graph: Graph, x: str, head: torch.nn.Sequential) -> str:
    for layer in head:
        if isinstance(layer, torch.nn.Linear):
            x = graph.op("MatMul", [x, graph.const(layer.weight.detach().numpy().T, "head_w")])
            if layer.bias is not None:
                x = graph.op("Add", [x, graph.const(layer.bias.detach().numpy(), "head_b")])
        elif isinstance(layer, torch.nn.ReLU):
            x = graph.op("Relu", [x])
        elif not isinstance(layer, torch.nn.Dropout):  # dropout is the identity at inference
            raise ExportError(f"the head layer {layer} has no ONNX lowering")
    return x


def native_graph(model, lower, opset: int, metadata: dict[str, str]) -> onnx.ModelProto:
    graph = Graph(opset)
    embedded = graph.op("Gather", [graph.const(model.embedding.weight.detach().numpy(), "embedding"), "input_ids"], axis=0)
    outputs = lower(model.encoder, graph, embedded, "lengths")
    pooled = lower_pooling(graph, outputs, "lengths", model.pooling.kinds, model.pooling.bidirectional)
    logit = lower_head(graph, pooled, model.head)
    graph.op("Squeeze", [logit, graph.ints([1])], name="logits")
    return graph.model([int64_input("input_ids", ["batch", "sequence"]), int64_input("lengths", ["batch"])],
                       [float_output("logits", ["batch"])], metadata)


def build_onnx(model, lower, opset: int, metadata: dict[str, str], path: Path) -> dict[str, str]:
    """Write `model` as checked ONNX to `path` (natively when `lower` is given, else torch.onnx); return the metadata."""
    metadata = metadata | {"lowering": "native" if lower else "torch.onnx", "opset": str(opset)}
    exported = native_graph(model, lower, opset, metadata) if lower else torch_onnx_graph(model, opset, metadata, path)
    try:
        onnx.checker.check_model(exported, full_check=True)
    except Exception as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {exc}") from None
    onnx.save(exported, str(path))
    return metadata


def torch_onnx_graph(model, opset: int, metadata: dict[str, str], path: Path) -> onnx.ModelProto:
    """The generic path for plugins without a lowering: torch.onnx.export of the whole classifier."""
    ids = torch.randint(1, model.embedding.num_embeddings, (2, 12))
    lengths = torch.tensor([12, 7])
    try:
        torch.onnx.export(model, (ids, lengths), str(path), input_names=["input_ids", "lengths"],
                          output_names=["logits"], opset_version=opset, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "lengths": {0: "batch"},
                                        "logits": {0: "batch"}})
    except Exception as exc:
        raise ExportError(f"torch.onnx cannot export this architecture: {type(exc).__name__}: {exc}. "
                          "Give the plugin a native lowering (Architecture.lower_onnx) or use ops torch.onnx supports")
    exported = onnx.load(str(path))
    onnx.helper.set_model_props(exported, metadata)
    return exported


@dataclass
class Check:
    name: str
    batch_size: int
    rows: list[int]


def validation_batches(lengths: np.ndarray, seed: int = 0) -> list[Check]:
    """Batches of sizes 1, 7 and 64 in random order, plus the shortest reviews beside the longest."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    checks = [Check("alone", 1, [int(i)]) for i in order[:16]]
    checks += [Check("batch of 7", 7, order[s:s + 7].tolist()) for s in range(0, len(order) - 6, 7)]
    checks += [Check("batch of 64", 64, order[s:s + 64].tolist()) for s in range(0, len(order) - 63, 64)]
    by_length = np.argsort(lengths)
    checks.append(Check("shortest with longest", 8, by_length[:4].tolist() + by_length[-4:].tolist()))
    return checks


def pick_reviews(lengths: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """`count` validation reviews: the 8 longest, the rest drawn at random."""
    rng = np.random.default_rng(seed)
    longest = np.argsort(lengths)[-8:]
    rest = rng.permutation(np.setdiff1d(np.arange(len(lengths)), longest))[: count - len(longest)]
    return np.concatenate([longest, rest])


def validate(model, session, rows: list[np.ndarray], atol: float) -> dict:
    lengths = np.array([len(r) for r in rows])
    worst = {"diff": -1.0}
    checked = 0
    for check in validation_batches(lengths):
        ids, lens = pad_rows([rows[i] for i in check.rows])
        with torch.no_grad():
            expected = model(torch.from_numpy(ids), torch.from_numpy(lens)).numpy()
        try:
            got = session.run(["logits"], {"input_ids": ids, "lengths": lens})[0]
        except Exception as exc:
            raise ExportError(f"onnxruntime fails on the export ({check.name}, batch padded to {int(lens.max())} "
                              f"tokens): {type(exc).__name__}: {exc}. A Python loop over time is traced for one "
                              "length only by torch.onnx; give the plugin a native lowering (Architecture.lower_onnx)") from None
        if got.shape != expected.shape:
            raise ExportError(f"onnxruntime returned logits of shape {got.shape} for {check.name}, expected {expected.shape}")
        diff = np.abs(got.astype(np.float64) - expected)
        checked += len(check.rows)
        if not np.all(np.isfinite(got)):
            diff = np.full_like(diff, np.inf)
        if diff.max() > worst["diff"]:
            at = int(diff.argmax())
            worst = {"diff": float(diff.max()), "case": check.name, "batch_size": len(check.rows),
                     "review_length": int(lens[at]), "batch_max_length": int(lens.max()),
                     "torch": float(expected[at]), "onnxruntime": float(got[at])}
    return {"max_abs_diff": worst["diff"], "worst": worst, "checked": checked, "passed": worst["diff"] <= atol}


def export_onnx(run_dir, output=None, *, opset: int | None = None, atol: float | None = None,
                data: str | None = None, threads: int | None = None) -> dict:
    opset, atol = opset or DEFAULT_OPSET, DEFAULT_ATOL if atol is None else atol
    if not 14 <= opset <= 21:
        raise ExportError(f"--opset {opset}: supported opsets are 14 to 21")
    run = RunDir.open(run_dir)
    config = run.config()
    model = run.load_model()
    tokenizer = Tokenizer(run.file(TOKENIZER))
    path = Path(output) if output else run.path / "model.onnx"
    if path.suffix != ".onnx":
        raise ExportError(f"{path}: the output file must end in .onnx")
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "zoo_version": __version__, "architecture": config.architecture, "recipe": config.recipe,
        "labels": json.dumps(["neg", "pos"]), "tokenizer_sha256": tokenizer.sha256, "tokenizer_file": TOKENIZER,
        "normalization": NORMALIZATION, "max_tokens": str(config.train.max_tokens),
        "config": json.dumps(config.to_dict()),
    }
    metadata = build_onnx(model, architectures().get(config.architecture).lower_onnx, opset, metadata, path)
    if path.parent.resolve() != run.path.resolve():
        shutil.copyfile(run.file(TOKENIZER), path.parent / TOKENIZER)

    # --- validation against PyTorch on real validation reviews ------------------------------
    source = data or run.read_info().get("data", {}).get("source")
    try:
        validation = encode_splits(load_imdb(source), tokenizer, names=["validation"])["validation"]
    except ZooError as exc:
        raise ExportError(f"validating the export needs the run's validation reviews: {exc}") from None
    chosen = pick_reviews(validation.lengths, VALIDATION_REVIEWS)
    rows = [validation.ids(int(i)).astype(np.int64) for i in chosen]
    rows = [truncate(r, config.train.max_tokens) for r in rows]
    report = validate(model, open_session(path, threads), rows, atol)
    report |= {"path": str(path), "reviews": len(rows), "batch_sizes": [1, 7, 64], "atol": atol, "lowering": metadata["lowering"],
               "opset": opset}
    if not report["passed"]:
        failed = path.with_name(path.stem + ".failed.onnx")
        path.replace(failed)
        report["path"] = str(failed)
        w = report["worst"]
        raise ExportError(f"the export misses its tolerance: max |logit difference| {w['diff']:.3g} > atol {atol:g}, "
                          f"worst in {w['case']} (batch size {w['batch_size']}, review of {w['review_length']} tokens "
                          f"in a batch padded to {w['batch_max_length']}: torch {w['torch']:.6f}, onnxruntime "
                          f"{w['onnxruntime']:.6f}); the file is kept as {failed}", report)
    return report
