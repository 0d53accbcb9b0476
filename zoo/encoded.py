"""Tokenized splits: encoded once through `datasets` (Arrow, map(batched=True)), cached, held as flat arrays.

An `EncodedSplit` keeps every review's ids in one flat int32 array with
offsets, so batching slices numpy memory instead of touching Python lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from zoo.data import ImdbSplits, cache_dir
from zoo.tokenizer import Tokenizer, sentencepiece_version


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


def encode_splits(splits: ImdbSplits, tokenizer: Tokenizer,
                  names: Iterable[str] = ("train", "validation", "test")) -> dict[str, EncodedSplit]:
    """Encode the named splits, reusing the Arrow cache from an earlier run with the same data and tokenizer."""
    from datasets import Dataset, Features, Sequence, Value

    folder = cache_dir() / "encoded"
    folder.mkdir(parents=True, exist_ok=True)
    features = Features({"input_ids": Sequence(Value("int32")), "label": Value("int64")})
    available = splits.named()
    out = {}
    for name in names:
        path = folder / f"{splits.fingerprint}-{tokenizer.sha256[:16]}-spm{sentencepiece_version()}-{name}.arrow"
        if path.is_file():
            encoded = Dataset.from_file(str(path))
        else:
            dataset = available[name]
            tmp = path.with_name(path.name + ".tmp")
            encoded = dataset.map(
                lambda batch: {"input_ids": tokenizer.encode(batch["text"]), "label": batch["label"]},
                batched=True, batch_size=5000, remove_columns=dataset.column_names, features=features,
                cache_file_name=str(tmp), load_from_cache_file=False, desc=f"encoding {name}",
            )
            del encoded
            tmp.replace(path)
            encoded = Dataset.from_file(str(path))
        column = encoded.data.column("input_ids").combine_chunks()
        out[name] = EncodedSplit(
            name,
            tokens=column.values.to_numpy(zero_copy_only=False).astype(np.int32, copy=False),
            offsets=column.offsets.to_numpy().astype(np.int64),
            labels=encoded.data.column("label").to_numpy().astype(np.int64),
        )
    return out
