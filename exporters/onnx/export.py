"""`zoo export RUN --format onnx`: run directory -> model.onnx (+ tokenizer.model beside it), validated against
PyTorch.

The graph (zoo.exporters.onnx.classifier) takes `input_ids` [batch, sequence]
int64 and `lengths` [batch] int64 and returns `logits`: [batch] for two classes
(the second class's logit), [batch, K] for K > 2; the class names are in its
metadata (`labels`).

Validation (zoo.exporters.onnx.validation), after every export: onnxruntime against PyTorch on real validation
reviews, alone (batch 1), in batches of 7 and 64 in random order (short and
long mixed), and in one batch of the shortest beside the longest. The largest
|logit difference| must stay within atol; otherwise the export fails with the
worst case named.

The export is written to a temporary file and renamed to its name only once it
has passed: however it fails (onnx.checker, onnxruntime, tolerance), the name
keeps the previous good file (or nothing) and the failed graph is kept as
`<name>.failed.onnx`. It never writes into another run's directory or over a
tokenizer.model that belongs to another model.

Variants: `with_tokenizer` puts zoo.exporters.onnx.text_frontend in front (raw strings
in; validated on the raw text of the same reviews); `quantize="int8"` applies
onnxruntime's dynamic quantization and is judged on validation accuracy
instead of logits (see export_onnx).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from zoo import __version__
from zoo.data.batching import truncate
from zoo.data.encoding import encode_splits
from zoo.data.segmenter import extensions_library
from zoo.data.text import NORMALIZATION
from zoo.data.tokenizer import Tokenizer
from zoo.errors import ExportError, ZooError
from zoo.exporters.onnx.classifier import (
    DEFAULT_OPSET,
    checker_problem,
    classifier_graph,
    encoder_lowering,
    metadata_of,
)
from zoo.exporters.onnx.quantize import quantize_int8
from zoo.exporters.onnx.text_frontend import with_text_frontend
from zoo.exporters.onnx.validation import accuracy_change, batch_invariance, pick_reviews, speedup, validate
from zoo.files import atomic_write
from zoo.inference.runtime import open_session
from zoo.registry.discovery import architectures
from zoo.runs.layout import TOKENIZER, RunDir
from zoo.runs.loaders import open_run, run_classifier, run_data, run_tokenizer
from zoo.runs.record import RunRecord

DEFAULT_ATOL, VALIDATION_REVIEWS = 1e-4, 256
DEFAULT_MAX_ACCURACY_DROP = 0.005  # int8 exports: validation accuracy may fall by half a point at most


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
    _check_options(opset, with_tokenizer, quantize)
    if threads:
        torch.set_num_threads(threads)  # the PyTorch reference forward; onnxruntime's sessions get `threads` too
    run, record = open_run(run_dir)
    tokenizer = run_tokenizer(run, record)
    model = run_classifier(run, record, tokenizer)
    path = Path(output) if output else default_output(run, with_tokenizer, quantize)
    if path.suffix != ".onnx":
        raise ExportError(f"{path}: the output file must end in .onnx")
    check_destination(run, path, tokenizer)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = record.config

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
        fp32 = classifier_graph(model, lower, opset, export_metadata(record, tokenizer), scratch)
        exported = wrap(quantize_int8(fp32, scratch) if quantize else fp32)
        onnx.save(exported, str(scratch))
        problem = checker_problem(exported)
        if problem:
            scratch.replace(failed)
            raise ExportError(f"the exported graph fails onnx.checker: {problem}; the file is kept as {failed}")
        report = validate_export(run, record, model, tokenizer, scratch, data=data, threads=threads, atol=atol,
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


def _check_options(opset: int, with_tokenizer: bool, quantize: str | None) -> None:
    if not 14 <= opset <= 21:
        raise ExportError(f"--opset {opset}: supported opsets are 14 to 21")
    if quantize not in (None, "int8"):
        raise ExportError(f"--quantize {quantize}: the supported quantization is int8")
    if with_tokenizer and extensions_library() is None:
        raise ExportError("--with-tokenizer puts onnxruntime-extensions ops in the graph: install them with "
                          "`pip install onnxruntime-extensions` (no wheels for Python 3.14 yet: there, export without "
                          "--with-tokenizer and ship tokenizer.model beside the model)")


def export_metadata(record: RunRecord, tokenizer: Tokenizer) -> dict[str, str]:
    """What an exported model says of itself: its classes, its tokenizer, its normalization, its config."""
    config = record.config
    return {"zoo_version": __version__, "architecture": config.architecture, "recipe": config.recipe,
            "labels": json.dumps(record.classes), "tokenizer_sha256": tokenizer.sha256, "tokenizer_file": TOKENIZER,
            "normalization": NORMALIZATION, "max_tokens": str(config.train.max_tokens),
            "config": json.dumps(config.to_dict())}


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


def validate_export(run: RunDir, record: RunRecord, model, tokenizer: Tokenizer, scratch: Path, *, data, threads,
                    atol, with_tokenizer: bool, quantize, max_accuracy_drop, fp32, failed: Path) -> dict:
    """Validate the export at `scratch` against PyTorch on the run's real validation reviews; the report."""
    config = record.config
    try:
        splits = run_data(run, record, data, allow_other_data=True)  # any real reviews serve to compare the engines
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


def failure_message(report: dict, failed: Path) -> str:
    if "quantization" in report:
        return (f"the int8 export loses {-100 * report['accuracy_change']:.2f} points of validation accuracy "
                f"({100 * report['validation_accuracy_torch']:.2f}% in PyTorch, {100 * report['validation_accuracy_onnx']:.2f}% "
                f"int8), more than the allowed {100 * report['max_accuracy_drop']:.2f}; the file is kept as {failed}. "
                "Export without --quantize, or allow more with --max-accuracy-drop")
    w = report["worst"]
    hint = (" Only the text front end differs from an ids-in export, and it segments with the zoo's own "
            "segmenter (zoo.data.segmenter): check the text normalization") if report["input"] == "text" else ""
    return (f"the export misses its tolerance: max |logit difference| {w['diff']:.3g} > atol {report['atol']:g}, "
            f"worst in {w['case']} (batch size {w['batch_size']}, review of {w['review_length']} tokens "
            f"in a batch padded to {w['batch_max_length']}: torch {w['torch']:.6f}, onnxruntime "
            f"{w['onnxruntime']:.6f}); the file is kept as {failed}.{hint}")
