"""Tokenized splits: encoded once through `datasets` (Arrow, map(batched=True)), cached, held as flat arrays.

An `EncodedSplit` keeps every review's ids in one flat int32 array with
offsets, so batching slices numpy memory instead of touching Python lists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from zoo.data.cache import cache_dir, cache_lock
from zoo.data.splits import Splits
from zoo.data.tokenizer import Tokenizer
from zoo.faults import failpoint


@dataclass
class EncodedSplit:
    name: str
    tokens: np.ndarray  # int32, all reviews back to back
    offsets: np.ndarray  # int64, len(reviews) + 1
    labels: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def ids(self, index: int) -> np.ndarray:
        return self.tokens[self.offsets[index]:self.offsets[index + 1]]

    @classmethod
    def from_lists(cls, name: str, ids: list[list[int]], labels: Iterable[int]) -> "EncodedSplit":
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        flat = np.fromiter((t for x in ids for t in x), dtype=np.int32, count=int(offsets[-1]))
        return cls(name, flat, offsets, np.asarray(list(labels), dtype=np.int64))


def encode_splits(splits: Splits, tokenizer: Tokenizer,
                  names: Iterable[str] = ("train", "validation", "test")) -> dict[str, EncodedSplit]:
    """Encode the named splits that exist (a dataset may have no test split), reusing the Arrow cache from an
    earlier run with the same data and tokenizer."""
    folder = cache_dir() / "encoded"
    available = splits.named()
    out = {}
    for name in [n for n in names if n in available]:
        path = folder / f"{splits.fingerprint}-{tokenizer.sha256[:16]}-{tokenizer.segmenter.name}-{name}.arrow"
        with cache_lock(path):  # one process encodes, another wanting the same split waits and reuses it
            encoded = _load_encoded(path, len(available[name]))
            if encoded is None:
                encoded = _encode(available[name], tokenizer, name, path)
        column = encoded.data.column("input_ids").combine_chunks()
        out[name] = EncodedSplit(
            name,
            tokens=column.values.to_numpy(zero_copy_only=False).astype(np.int32, copy=False),
            offsets=column.offsets.to_numpy().astype(np.int64),
            labels=encoded.data.column("label").to_numpy().astype(np.int64),
        )
    return out


def _load_encoded(path: Path, rows: int):
    """The cached encoded split at `path`, or None when it is missing or corrupt (then it is removed)."""
    from datasets import Dataset

    if not path.is_file():
        return None
    try:
        encoded = Dataset.from_file(str(path))
        if len(encoded) == rows and set(encoded.column_names) == {"input_ids", "label"}:
            return encoded
    except Exception:
        pass
    path.unlink()
    return None


def _encode(dataset, tokenizer: Tokenizer, name: str, path: Path):
    from datasets import Dataset, Features, Sequence, Value

    features = Features({"input_ids": Sequence(Value("int32")), "label": Value("int64")})
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    encoded = dataset.map(
        lambda batch: {"input_ids": tokenizer.encode(batch["text"]), "label": batch["label"]},
        batched=True, batch_size=5000, remove_columns=dataset.column_names, features=features,
        cache_file_name=str(tmp), load_from_cache_file=False, desc=f"encoding {name}",
    )
    del encoded
    failpoint("encoding")
    tmp.replace(path)
    return Dataset.from_file(str(path))


def chunk_texts(splits: list[EncodedSplit], chunk_tokens: int, name: str = "lm") -> EncodedSplit:
    """The texts of `splits` back to back, each cut into chunks of at most chunk_tokens (each at least 2 tokens,
    a token and its successor); every chunk is read from its own start (no state carried between chunks)."""
    tokens = np.concatenate([s.tokens for s in splits]) if splits else np.zeros(0, np.int32)
    starts, ends, base = [], [], 0
    for split in splits:
        offsets = split.offsets + base
        for begin, end in zip(offsets[:-1], offsets[1:]):
            cuts = np.arange(begin, end, chunk_tokens)
            starts.append(cuts)
            ends.append(np.minimum(cuts + chunk_tokens, end))
        base += len(split.tokens)
    starts_all = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    ends_all = np.concatenate(ends) if ends else np.zeros(0, np.int64)
    keep = ends_all - starts_all >= 2
    starts_all, ends_all = starts_all[keep], ends_all[keep]
    # an EncodedSplit is one flat array with offsets: lay the kept chunks out back to back
    pieces = [tokens[a:b] for a, b in zip(starts_all, ends_all)]
    flat = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
    offsets = np.concatenate([[0], np.cumsum(ends_all - starts_all)]).astype(np.int64)
    return EncodedSplit(name, flat.astype(np.int32, copy=False), offsets, np.zeros(len(pieces), np.int64))
