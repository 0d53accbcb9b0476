"""How an export is judged against PyTorch on real reviews: logits compared at batch sizes 1, 7 and 64 in random
order and with the shortest beside the longest (the largest |logit difference| must stay within atol); for int8,
validation accuracy, batch invariance and speed against fp32."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from zoo.data.batching import evaluation_batches, pad_rows, truncate
from zoo.errors import ExportError
from zoo.inference.metrics import predicted_classes


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
    """Validation-split accuracy of PyTorch (fp32, zoo.inference.logits.split_logits) and of `session`."""
    from zoo.inference.logits import split_logits

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
