"""Length-bucketed batches: little padding, every review exactly once per epoch, seeded.

Each epoch shuffles the reviews (seed + epoch), cuts them into pools of 50
batches, sorts each pool by length and cuts it into batches of at most
`batch_size` reviews and at most `max_batch_tokens` padded tokens (B * T), then
shuffles the batches. Evaluation batches are the same without shuffling.

Truncation (`max_tokens` > 0): a longer review keeps its first and last
max_tokens / 2 tokens (head + tail: openings and verdicts both carry sentiment).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.data.encoding import EncodedSplit

POOL_BATCHES = 50


def truncated_lengths(lengths: np.ndarray, max_tokens: int) -> np.ndarray:
    return np.minimum(lengths, max_tokens) if max_tokens else lengths


def _cut(order: np.ndarray, lengths: np.ndarray, batch_size: int, max_batch_tokens: int) -> list[np.ndarray]:
    """Cut indices sorted by descending length into batches under both caps."""
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        size = batch_size if not max_batch_tokens else max(1, min(batch_size, max_batch_tokens // longest))
        batches.append(order[start:start + size])
        start += size
    return batches


@dataclass
class BucketBatchSampler:
    lengths: np.ndarray
    batch_size: int
    max_batch_tokens: int = 0
    seed: int = 0

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        pool = self.batch_size * POOL_BATCHES
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start:start + pool]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(_cut(chunk, self.lengths, self.batch_size, self.max_batch_tokens))
        return [batches[i] for i in rng.permutation(len(batches))]


def evaluation_batches(lengths: np.ndarray, batch_size: int, max_batch_tokens: int = 0) -> list[np.ndarray]:
    order = np.argsort(-lengths, kind="stable")
    return _cut(order, lengths, batch_size, max_batch_tokens)


def collate(split: EncodedSplit, indices: np.ndarray, max_tokens: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """input_ids [B, T] int64 (pad 0), lengths [B] int64, labels [B] int64, for the reviews at `indices`."""
    rows = [truncate(split.ids(int(i)), max_tokens) for i in indices]
    return pad_rows(rows) + (split.labels[indices],)


def truncate(ids: np.ndarray, max_tokens: int) -> np.ndarray:
    """Head + tail: keep the first and last max_tokens / 2 tokens of a longer review (0: keep all)."""
    if not max_tokens or len(ids) <= max_tokens:
        return ids
    head = max_tokens - max_tokens // 2
    return np.concatenate([ids[:head], ids[len(ids) - max_tokens // 2:]])


def pad_rows(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pad id rows to the longest with 0; an empty row becomes a single pad token (length 1)."""
    lengths = np.array([max(len(r), 1) for r in rows], dtype=np.int64)
    ids = np.zeros((len(rows), int(lengths.max(initial=1))), dtype=np.int64)
    for row, values in enumerate(rows):
        ids[row, :len(values)] = values
    return ids, lengths
