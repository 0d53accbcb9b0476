"""Classification metrics and predictions from logits: numpy only (the ONNX runtime uses them too).

Logits come in two shapes: [N] for two classes (one logit, the second class's) and
[N, K] for K > 2 classes. Every function here takes either.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def logits_shape(rows: int, classes: int) -> tuple[int, ...]:
    """The shape of the logits of `rows` texts: [rows] for two classes (one logit each), else [rows, K]."""
    return (rows,) if classes == 2 else (rows, classes)


def probabilities(logits: np.ndarray) -> np.ndarray:
    """[N, K] class probabilities: the sigmoid pair for one logit per row, else the softmax."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 1:
        positive = 1.0 / (1.0 + np.exp(-logits))
        return np.stack([1.0 - positive, positive], axis=-1)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def predicted_classes(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits)
    return (logits > 0).astype(np.int64) if logits.ndim == 1 else logits.argmax(axis=-1).astype(np.int64)


def mean_log_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    logits = np.asarray(logits, dtype=np.float64)
    if len(labels) == 0:
        return math.nan
    if logits.ndim == 1:  # log(1 + exp(-|z|)) + max(z, 0) - z * y: the stable binary cross-entropy
        return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))
    top = logits.max(axis=-1)
    log_normalizer = top + np.log(np.exp(logits - top[:, None]).sum(axis=-1))
    return float(np.mean(log_normalizer - logits[np.arange(len(labels)), labels]))


def classification_metrics(logits: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict:
    """Accuracy, mean log loss, macro-F1, per-class precision / recall / F1 and the confusion matrix.

    Two classes also get the second class's precision / recall / F1 and the named confusion cells.
    """
    labels = np.asarray(labels, dtype=np.int64)
    predicted = predicted_classes(logits)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)  # rows: true class, columns: predicted class
    np.add.at(confusion, (labels, predicted), 1)
    hits = np.diag(confusion).astype(np.float64)
    predicted_count, true_count = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(hits, predicted_count, out=np.zeros(k), where=predicted_count > 0)
    recall = np.divide(hits, true_count, out=np.zeros(k), where=true_count > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=precision + recall > 0)
    out = {
        "accuracy": float(hits.sum() / max(len(labels), 1)),
        "loss": mean_log_loss(logits, labels),
        "macro_f1": float(f1.mean()),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(true_count[i])} for i, name in enumerate(classes)},
        "confusion_matrix": confusion.tolist(),
        "classes": list(classes),
        "count": int(len(labels)),
    }
    if k == 2:
        (tn, fp), (fn, tp) = confusion.tolist()
        out |= {"precision": float(precision[1]), "recall": float(recall[1]), "f1": float(f1[1]),
                "confusion": {"true_neg": tn, "false_pos": fp, "false_neg": fn, "true_pos": tp}}
    return out


def predictions(logits: np.ndarray, classes: Sequence[str]) -> list[dict]:
    """One {"label", "probability" (of that label), "probabilities" (every class)} per row of logits."""
    result = []
    for row in probabilities(logits):
        best = int(row.argmax())
        result.append({"label": classes[best], "probability": round(float(row[best]), 6),
                       "probabilities": {name: round(float(p), 6) for name, p in zip(classes, row)}})
    return result
