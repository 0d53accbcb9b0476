"""Evaluation and prediction with a PyTorch classifier: logits in order, metrics, texts in, probabilities out."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from zoo.batching import collate, evaluation_batches
from zoo.encoded import EncodedSplit

EVAL_BATCH, EVAL_BATCH_TOKENS = 128, 128 * 512
LABELS = ("neg", "pos")


@torch.no_grad()
def split_logits(model: torch.nn.Module, split: EncodedSplit, device: str = "cpu", max_tokens: int = 0) -> np.ndarray:
    """The positive-class logit of every review in `split`, in the split's order."""
    model.eval()
    lengths = np.minimum(split.lengths, max_tokens) if max_tokens else split.lengths
    out = np.empty(len(split), dtype=np.float64)
    for batch in evaluation_batches(lengths, EVAL_BATCH, EVAL_BATCH_TOKENS):
        ids, lens, _ = collate(split, batch, max_tokens)
        logits = model(torch.from_numpy(ids).to(device), torch.from_numpy(lens).to(device))
        out[batch] = logits.float().cpu().numpy()
    return out


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


@torch.no_grad()
def text_logits(model: torch.nn.Module, tokenizer, texts: Sequence[str], max_tokens: int = 0,
                device: str = "cpu") -> np.ndarray:
    """Logits for raw texts; the same for a text alone or inside a batch (the encoders are padding-exact)."""
    if not texts:
        return np.empty(0)
    split = EncodedSplit.from_lists("texts", tokenizer.encode(list(texts)), [0] * len(texts))
    return split_logits(model, split, device, max_tokens)

