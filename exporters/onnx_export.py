"""Run directory -> model.onnx (+ tokenizer.model beside it), validated against PyTorch.

The graph takes `input_ids` [batch, sequence] int64 and `lengths` [batch]
int64 and returns `logits`: [batch] for two classes (the second class's
logit), [batch, K] for K > 2; the class names are in its metadata (`labels`). Architectures
with a native lowering (`Architecture.lower_onnx`) map onto ONNX's fused
recurrent ops, with the embedding, pooling and head written here; the others go
through torch.onnx (TorchScript-based exporter) as a whole.

Validation, after every export: onnxruntime against PyTorch on real validation
reviews, alone (batch 1), in batches of 7 and 64 in random order (short and
long mixed), and in one batch of the shortest beside the longest. The largest
|logit difference| must stay within atol; otherwise the export fails with the
worst case named.

The export is written to a temporary file and renamed to its name only once it
has passed: however it fails (onnx.checker, onnxruntime, tolerance), the name
keeps the previous good file (or nothing) and the failed graph is kept as
`<name>.failed.onnx`. It never writes into another run's directory or over a
tokenizer.model that belongs to another model.

Variants: `with_tokenizer` puts exporters/text_frontend.py in front (raw strings
in; validated on the raw text of the same reviews); `quantize="int8"` applies
onnxruntime's dynamic quantization and is judged on validation accuracy
instead of logits (see export_onnx).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper

from zoo import __version__
from zoo.batching import evaluation_batches, pad_rows, truncate
from zoo.encoded import encode_splits
from zoo.errors import ExportError, ZooError
from zoo.exporters.graph import Graph, float_output, int64_input
from zoo.exporters.lowering import step_positions
from zoo.exporters.scan import lower_cell_encoder
from zoo.exporters.text_frontend import with_text_frontend
from zoo.files import atomic_write
from zoo.metrics import predicted_classes
from zoo.registry import architectures
from zoo.rundir import TOKENIZER, RunDir
from zoo.runtime import open_session
from zoo.segmenter import extensions_library
from zoo.tokenizer import Tokenizer

DEFAULT_OPSET, DEFAULT_ATOL, VALIDATION_REVIEWS = 17, 1e-4, 256
DEFAULT_MAX_ACCURACY_DROP = 0.005  # int8 exports: validation accuracy may fall by half a point at most
NORMALIZATION = "HTML line breaks (<br />, <br/>, <br>, any case) and NUL become one space; then SentencePiece NFKC"


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
    logits = lower_head(graph, pooled, model.head)
    if model.num_classes == 2:  # one logit, the second class's: [batch]
        graph.op("Squeeze", [logits, graph.ints([1])], name="logits")
        shape = ["batch"]
    else:
        graph.op("Identity", [logits], name="logits")
        shape = ["batch", model.num_classes]
    return graph.model([int64_input("input_ids", ["batch", "sequence"]), int64_input("lengths", ["batch"])],
                       [float_output("logits", shape)], metadata)


def encoder_lowering(architecture, encoder):
    """How an encoder goes to ONNX: the plugin's native lowering, the generic Scan lowering of a cell encoder,
    or None (torch.onnx of the whole classifier)."""
    from zoo.cells import CellEncoder

    if architecture.lower_onnx is not None:
        return architecture.lower_onnx
    return lower_cell_encoder if isinstance(encoder, CellEncoder) else None


def classifier_graph(model, lower, opset: int, metadata: dict[str, str], scratch: Path) -> onnx.ModelProto:
    """The ids-in ONNX of `model`: native when `lower` is given, else torch.onnx (which writes `scratch`)."""
    kind = "scan" if lower is lower_cell_encoder else "native"
    metadata = metadata | {"lowering": kind if lower else "torch.onnx", "opset": str(opset)}
    return native_graph(model, lower, opset, metadata) if lower else torch_onnx_graph(model, opset, metadata, scratch)


def check_and_save(exported: onnx.ModelProto, path: Path) -> None:
    problem = checker_problem(exported)
    if problem:
        raise ExportError(f"the exported graph fails onnx.checker: {problem}")
    onnx.save(exported, str(path))


def build_onnx(model, lower, opset: int, metadata: dict[str, str], path: Path) -> dict[str, str]:
    """Write `model` as checked ids-in ONNX to `path`; return the metadata it carries."""
    exported = classifier_graph(model, lower, opset, metadata, path)
    check_and_save(exported, path)
    return metadata_of(exported)


def quantize_int8(exported: onnx.ModelProto, scratch: Path) -> onnx.ModelProto:
    """Dynamic int8 quantization (onnxruntime.quantization): int8 weights for LSTM, MatMul and Gather.

    GRU has no quantized kernel in onnxruntime and stays fp32; activations are
    quantized at run time, per tensor.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, target = scratch.with_name(scratch.stem + ".fp32.tmp"), scratch.with_name(scratch.stem + ".int8.tmp")
    try:
        onnx.save(exported, str(source))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # silence its generic advice to pre-process the model first
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, op_types_to_quantize=["LSTM", "MatMul", "Gather"])
        finally:
            root.setLevel(level)
        quantized = onnx.load(str(target))
    finally:
        source.unlink(missing_ok=True)
        target.unlink(missing_ok=True)
    helper.set_model_props(quantized, metadata_of(exported) | {"quantization": "int8-dynamic"})
    return quantized


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


def feed(rows: list[np.ndarray], texts: list[str] | None, indices: list[int]) -> dict:
    """Session inputs for the reviews at `indices`: padded ids, or their raw texts for a text-in model."""
    if texts is not None:
        return {"text": np.array([texts[i] for i in indices], dtype=object)}
    ids, lens = pad_rows([rows[i] for i in indices])
    return {"input_ids": ids, "lengths": lens}


def validate(model, session, rows: list[np.ndarray], atol: float, texts: list[str] | None = None) -> dict:
    """Largest |logit difference| between PyTorch (on `rows`) and `session` over validation_batches.

    `texts`: the raw reviews behind `rows`, for a model that takes text.
    """
    lengths = np.array([len(r) for r in rows])
    worst = {"diff": -1.0}
    checked = 0
    for check in validation_batches(lengths):
        ids, lens = pad_rows([rows[i] for i in check.rows])
        with torch.no_grad():
            expected = model(torch.from_numpy(ids), torch.from_numpy(lens)).numpy()
        try:
            got = session.run(["logits"], feed(rows, texts, check.rows))[0]
        except Exception as exc:
            raise ExportError(f"onnxruntime fails on the export ({check.name}, batch padded to {int(lens.max())} "
                              f"tokens): {type(exc).__name__}: {exc}. A Python loop over time is traced for one "
                              "length only by torch.onnx; give the plugin a native lowering (Architecture.lower_onnx)") from None
        if got.shape != expected.shape:
            raise ExportError(f"onnxruntime returned logits of shape {got.shape} for {check.name}, expected {expected.shape}")
        diff = np.abs(got.astype(np.float64) - expected).reshape(len(check.rows), -1)  # [reviews, logits]
        checked += len(check.rows)
        if not np.all(np.isfinite(got)):
            diff = np.full_like(diff, np.inf)
        if diff.max() > worst["diff"]:
            at, logit = np.unravel_index(int(diff.argmax()), diff.shape)
            worst = {"diff": float(diff.max()), "case": check.name, "batch_size": len(check.rows),
                     "review_length": int(lens[at]), "batch_max_length": int(lens.max()),
                     "torch": float(expected.reshape(diff.shape)[at, logit]),
                     "onnxruntime": float(got.reshape(diff.shape)[at, logit])}
    return {"max_abs_diff": worst["diff"], "worst": worst, "checked": checked, "passed": worst["diff"] <= atol}


def batch_invariance(session, rows: list[np.ndarray], texts: list[str] | None) -> float:
    """Largest |logit difference| of a review alone vs inside its batch of 64 (0 for exact fp32 graphs)."""
    indices = list(range(min(len(rows), 64)))
    batched = session.run(["logits"], feed(rows, texts, indices))[0]
    alone = np.array([session.run(["logits"], feed(rows, texts, [i]))[0][0] for i in indices])
    return float(np.abs(batched.astype(np.float64) - alone).max())


def accuracy_change(model, session, split, texts: list[str] | None, max_tokens: int) -> dict:
    """Validation-split accuracy of PyTorch (fp32, zoo.evaluate.split_logits) and of `session`."""
    from zoo.evaluate import split_logits

    rows = [truncate(split.ids(i).astype(np.int64), max_tokens) for i in range(len(split))]
    reference = split_logits(model, split, max_tokens=max_tokens)
    got = np.empty(reference.shape)
    for batch in evaluation_batches(np.array([len(r) for r in rows]), 64):
        got[batch] = session.run(["logits"], feed(rows, texts, batch.tolist()))[0]
    expected, predicted = predicted_classes(reference), predicted_classes(got)
    torch_acc, onnx_acc = float((expected == split.labels).mean()), float((predicted == split.labels).mean())
    return {"validation_accuracy_torch": torch_acc, "validation_accuracy_onnx": onnx_acc,
            "accuracy_change": onnx_acc - torch_acc, "prediction_agreement": float((expected == predicted).mean())}


def speedup(fp32, int8, rows: list[np.ndarray], texts: list[str] | None) -> dict:
    """Reviews/s of the fp32 and the int8 session on the same reviews: alone (32 of them) and in batches of 64."""
    lengths = np.array([len(r) for r in rows])
    cases = {"batch 1": [[i] for i in range(min(32, len(rows)))],
             "batch 64": [b.tolist() for b in evaluation_batches(lengths, 64)]}
    out = {}
    for name, batches in cases.items():
        feeds = [feed(rows, texts, b) for b in batches]
        rate = {}
        for label, session in (("fp32", fp32), ("int8", int8)):
            session.run(["logits"], feeds[0])  # warm up
            start = time.perf_counter()
            for f in feeds:
                session.run(["logits"], f)
            rate[label] = sum(len(b) for b in batches) / (time.perf_counter() - start)
        out[name] = {"fp32_reviews_per_second": rate["fp32"], "int8_reviews_per_second": rate["int8"],
                     "speedup": rate["int8"] / rate["fp32"]}
    return out


def default_output(run: RunDir, with_tokenizer: bool, quantize: str | None) -> Path:
    """RUN/model.onnx, model-text.onnx, model.int8.onnx or model-text.int8.onnx."""
    return run.path / ("model" + ("-text" if with_tokenizer else "") + (f".{quantize}" if quantize else "") + ".onnx")


def export_onnx(run_dir, output=None, *, opset: int | None = None, atol: float | None = None,
                data: str | None = None, threads: int | None = None, with_tokenizer: bool = False,
                quantize: str | None = None, max_accuracy_drop: float | None = None) -> dict:
    """Export a run to ONNX and validate it; see the module docstring. Returns the validation report.

    with_tokenizer: the graph takes raw strings (`text` [batch]) through onnxruntime-extensions ops.
    quantize "int8": dynamic quantization; it passes when validation accuracy drops by at most
    max_accuracy_drop (a fraction, default 0.005), and the report gives the speed-up over fp32.
    """
    opset, atol = opset or DEFAULT_OPSET, DEFAULT_ATOL if atol is None else atol
    max_accuracy_drop = DEFAULT_MAX_ACCURACY_DROP if max_accuracy_drop is None else max_accuracy_drop
    if not 14 <= opset <= 21:
        raise ExportError(f"--opset {opset}: supported opsets are 14 to 21")
    if quantize not in (None, "int8"):
        raise ExportError(f"--quantize {quantize}: the supported quantization is int8")
    if with_tokenizer and extensions_library() is None:
        raise ExportError("--with-tokenizer puts onnxruntime-extensions ops in the graph: install them with "
                          "`pip install onnxruntime-extensions` (no wheels for Python 3.14 yet: there, export without "
                          "--with-tokenizer and ship tokenizer.model beside the model)")
    if threads:
        torch.set_num_threads(threads)  # the PyTorch reference forward; onnxruntime's sessions get `threads` too
    run = RunDir.open(run_dir)
    config = run.config()
    model = run.load_model()
    tokenizer = run.tokenizer()
    path = Path(output) if output else default_output(run, with_tokenizer, quantize)
    if path.suffix != ".onnx":
        raise ExportError(f"{path}: the output file must end in .onnx")
    check_destination(run, path, tokenizer)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "zoo_version": __version__, "architecture": config.architecture, "recipe": config.recipe,
        "labels": json.dumps(run.classes()), "tokenizer_sha256": tokenizer.sha256, "tokenizer_file": TOKENIZER,
        "normalization": NORMALIZATION, "max_tokens": str(config.train.max_tokens),
        "config": json.dumps(config.to_dict()),
    }

    def wrap(classifier: onnx.ModelProto) -> onnx.ModelProto:  # the text front end, when asked for
        if not with_tokenizer:
            return classifier
        return with_text_frontend(classifier, tokenizer.path.read_bytes(), config.train.max_tokens, opset)

    # Everything is written to a temporary file first: `path` gets the export only once it has passed.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.onnx")
    os.close(fd)
    scratch, failed = Path(name), path.with_name(path.stem + ".failed.onnx")
    try:
        lower = encoder_lowering(architectures().get(config.architecture), model.encoder)
        fp32 = classifier_graph(model, lower, opset, metadata, scratch)
        exported = wrap(quantize_int8(fp32, scratch) if quantize else fp32)
        onnx.save(exported, str(scratch))
        problem = checker_problem(exported)
        if problem:
            scratch.replace(failed)
            raise ExportError(f"the exported graph fails onnx.checker: {problem}; the file is kept as {failed}")
        report = validate_export(run, model, config, tokenizer, scratch, data=data, threads=threads, atol=atol,
                                 with_tokenizer=with_tokenizer, quantize=quantize, max_accuracy_drop=max_accuracy_drop,
                                 fp32=(lambda: wrap(fp32).SerializeToString()), failed=failed)
        report |= {"lowering": metadata_of(exported)["lowering"], "opset": opset}
        if not report["passed"]:
            scratch.replace(failed)
            report["path"] = str(failed)
            raise ExportError(failure_message(report, failed), report)
        if path.parent.resolve() != run.path.resolve():
            atomic_write(path.parent / TOKENIZER, lambda f: f.write(run.file(TOKENIZER).read_bytes()))
        scratch.replace(path)
    finally:
        scratch.unlink(missing_ok=True)
    report["path"] = str(path)
    return report


def check_destination(run: RunDir, path: Path, tokenizer: Tokenizer) -> None:
    """Refuse, before any work, an output that would overwrite files belonging to another run or model."""
    folder = path.parent
    if folder.resolve() == run.path.resolve():
        return
    if (folder / "config.json").is_file():
        raise ExportError(f"{folder} is another run's directory; writing {path.name} and {TOKENIZER} there would "
                          f"replace its files. Export into {run.path} or a folder of its own")
    beside = folder / TOKENIZER
    if beside.exists() and hashlib.sha256(beside.read_bytes()).hexdigest() != tokenizer.sha256:
        raise ExportError(f"{beside} belongs to another model (a different tokenizer); exporting to {path} would replace "
                          "it and break that model. Export into a folder of its own")


def checker_problem(exported: onnx.ModelProto) -> str | None:
    try:
        onnx.checker.check_model(exported, full_check=True)
    except Exception as exc:
        return str(exc)
    return None


def validate_export(run: RunDir, model, config, tokenizer: Tokenizer, scratch: Path, *, data, threads, atol,
                    with_tokenizer: bool, quantize, max_accuracy_drop, fp32, failed: Path) -> dict:
    """Validate the export at `scratch` against PyTorch on the run's real validation reviews; the report."""
    try:
        splits = run.load_data(data, allow_other_data=True)  # any real reviews serve to compare the two engines
        validation = encode_splits(splits, tokenizer, names=["validation"])["validation"]
    except ZooError as exc:
        raise ExportError(f"validating the export needs the run's validation reviews: {exc}") from None
    all_texts = list(splits.validation["text"]) if with_tokenizer else None
    chosen = pick_reviews(validation.lengths, VALIDATION_REVIEWS)
    rows = [truncate(validation.ids(int(i)).astype(np.int64), config.train.max_tokens) for i in chosen]
    texts = [all_texts[int(i)] for i in chosen] if with_tokenizer else None
    try:
        session = open_session(scratch, threads)
    except Exception as exc:
        scratch.replace(failed)
        raise ExportError(f"onnxruntime cannot load the export ({type(exc).__name__}: {exc}); "
                          f"the file is kept as {failed}") from None
    try:
        report = validate(model, session, rows, atol, texts)
    except ExportError as exc:
        scratch.replace(failed)
        raise ExportError(f"{exc}; the file is kept as {failed}") from None
    report |= {"reviews": len(rows), "batch_sizes": [1, 7, 64], "atol": atol, "input": "text" if with_tokenizer else "ids"}
    if quantize:
        report |= accuracy_change(model, session, validation, all_texts, config.train.max_tokens)
        report |= {"quantization": quantize, "max_accuracy_drop": max_accuracy_drop,
                   "batch_invariance": batch_invariance(session, rows, texts),
                   "speed": speedup(open_session(fp32(), threads), session, rows, texts),
                   "passed": report["accuracy_change"] >= -max_accuracy_drop}
    return report


def metadata_of(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def failure_message(report: dict, failed: Path) -> str:
    if "quantization" in report:
        return (f"the int8 export loses {-100 * report['accuracy_change']:.2f} points of validation accuracy "
                f"({100 * report['validation_accuracy_torch']:.2f}% in PyTorch, {100 * report['validation_accuracy_onnx']:.2f}% "
                f"int8), more than the allowed {100 * report['max_accuracy_drop']:.2f}; the file is kept as {failed}. "
                "Export without --quantize, or allow more with --max-accuracy-drop")
    w = report["worst"]
    hint = (" Only the text front end differs from an ids-in export, and it segments with the zoo's own "
            "segmenter (zoo.segmenter): check the text normalization") if report["input"] == "text" else ""
    return (f"the export misses its tolerance: max |logit difference| {w['diff']:.3g} > atol {report['atol']:g}, "
            f"worst in {w['case']} (batch size {w['batch_size']}, review of {w['review_length']} tokens "
            f"in a batch padded to {w['batch_max_length']}: torch {w['torch']:.6f}, onnxruntime "
            f"{w['onnxruntime']:.6f}); the file is kept as {failed}.{hint}")
