"""Logits from a PyTorch classifier: for a whole encoded split, or for raw texts (metrics: zoo.inference.metrics)."""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import torch

from zoo.data.batching import collate, evaluation_batches
from zoo.data.encoding import EncodedSplit
from zoo.inference.metrics import logits_shape

EVAL_BATCH, EVAL_BATCH_TOKENS = 128, 128 * 512


class Workers(Protocol):
    """Processes that share an evaluation (zoo.training.world.World under torchrun)."""

    def shard(self, rows: list) -> list: ...

    def sum_array(self, array: np.ndarray) -> np.ndarray: ...


class Alone:
    """One process: it does all the work."""

    def shard(self, rows: list) -> list:
        return rows

    def sum_array(self, array: np.ndarray) -> np.ndarray:
        return array


def set_torch_threads(threads: int | None) -> None:
    """--threads for PyTorch (None: its default, all cores)."""
    if threads:
        torch.set_num_threads(threads)


@torch.no_grad()
def split_logits(model: torch.nn.Module, split: EncodedSplit, device: str = "cpu", max_tokens: int = 0,
                 workers: Workers = Alone()) -> np.ndarray:
    """The logits of every review in `split`, in the split's order: [N] for two classes, else [N, K].

    Several processes (`workers`) each compute their share of the batches, and every one gets them all (a
    collective call: every process makes it)."""
    model.eval()
    lengths = np.minimum(split.lengths, max_tokens) if max_tokens else split.lengths
    out = np.zeros(logits_shape(len(split), getattr(model, "num_classes", 2)), dtype=np.float64)
    for batch in workers.shard(evaluation_batches(lengths, EVAL_BATCH, EVAL_BATCH_TOKENS)):
        ids, lens, _ = collate(split, batch, max_tokens)
        logits = model(torch.from_numpy(ids).to(device), torch.from_numpy(lens).to(device))
        out[batch] = logits.float().cpu().numpy()
    return workers.sum_array(out)


@torch.no_grad()
def text_logits(model: torch.nn.Module, tokenizer, texts: Sequence[str], max_tokens: int = 0,
                device: str = "cpu") -> np.ndarray:
    """Logits for raw texts; the same for a text alone or inside a batch (the encoders are padding-exact)."""
    if not texts:
        return np.empty(logits_shape(0, getattr(model, "num_classes", 2)))
    split = EncodedSplit.from_lists("texts", tokenizer.encode(list(texts)), [0] * len(texts))
    return split_logits(model, split, device, max_tokens)

