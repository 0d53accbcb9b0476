"""Classification metrics and predictions from logits: numpy only (the ONNX runtime uses them too)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

LABELS = ("neg", "pos")


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, mean log loss, precision / recall / F1 of `pos`, and the confusion matrix."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    predicted = (logits > 0).astype(np.int64)
    # log(1 + exp(-|z|)) + max(z, 0) - z * y: the stable binary cross-entropy
    loss = float(np.mean(np.logaddexp(0.0, logits) - labels * logits)) if len(labels) else math.nan
    tp = int(((predicted == 1) & (labels == 1)).sum())
    fp = int(((predicted == 1) & (labels == 0)).sum())
    fn = int(((predicted == 0) & (labels == 1)).sum())
    tn = int(((predicted == 0) & (labels == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": (tp + tn) / max(len(labels), 1),
        "loss": loss,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "confusion": {"true_neg": tn, "false_pos": fp, "false_neg": fn, "true_pos": tp},
        "count": int(len(labels)),
    }


def probabilities(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def predictions(logits: Sequence[float]) -> list[dict]:
    """One {"label", "probability"} per logit; probability is P(pos)."""
    return [{"label": LABELS[int(p > 0.5)], "probability": round(float(p), 6)} for p in probabilities(np.asarray(logits))]
