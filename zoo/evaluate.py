"""Logits from a PyTorch classifier: for a whole encoded split, or for raw texts (metrics live in zoo.metrics)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from zoo.batching import collate, evaluation_batches
from zoo.distributed import World
from zoo.encoded import EncodedSplit
from zoo.metrics import logits_shape

EVAL_BATCH, EVAL_BATCH_TOKENS = 128, 128 * 512


@torch.no_grad()
def split_logits(model: torch.nn.Module, split: EncodedSplit, device: str = "cpu", max_tokens: int = 0,
                 world: World = World()) -> np.ndarray:
    """The logits of every review in `split`, in the split's order: [N] for two classes, else [N, K].

    In a world of several processes each computes its share of the batches and every process gets them all
    (a collective call: every rank makes it)."""
    model.eval()
    lengths = np.minimum(split.lengths, max_tokens) if max_tokens else split.lengths
    out = np.zeros(logits_shape(len(split), getattr(model, "num_classes", 2)), dtype=np.float64)
    for batch in world.shard(evaluation_batches(lengths, EVAL_BATCH, EVAL_BATCH_TOKENS)):
        ids, lens, _ = collate(split, batch, max_tokens)
        logits = model(torch.from_numpy(ids).to(device), torch.from_numpy(lens).to(device))
        out[batch] = logits.float().cpu().numpy()
    return world.sum_array(out)


@torch.no_grad()
def text_logits(model: torch.nn.Module, tokenizer, texts: Sequence[str], max_tokens: int = 0,
                device: str = "cpu") -> np.ndarray:
    """Logits for raw texts; the same for a text alone or inside a batch (the encoders are padding-exact)."""
    if not texts:
        return np.empty(logits_shape(0, getattr(model, "num_classes", 2)))
    split = EncodedSplit.from_lists("texts", tokenizer.encode(list(texts)), [0] * len(texts))
    return split_logits(model, split, device, max_tokens)

