"""`zoo data`: load the splits, build or reuse the tokenizer, and summarize sizes and token lengths."""

from __future__ import annotations

import numpy as np

from zoo.config import TokenizerConfig
from zoo.data import load_imdb
from zoo.encoded import encode_splits
from zoo.tokenizer import tokenizer_for


def data_summary(source: str | None, config: TokenizerConfig) -> dict:
    splits = load_imdb(source)
    tokenizer = tokenizer_for(splits, config)
    encoded = encode_splits(splits, tokenizer)
    summary: dict = {"source": splits.source, "splits": {}, "tokenizer": {
        "vocab_size": tokenizer.vocab_size, "path": str(tokenizer.path), "sha256": tokenizer.sha256}, "tokens": {}}
    for name, split in encoded.items():
        pos = int(split.labels.sum())
        summary["splits"][name] = {"rows": len(split), "pos": pos, "neg": len(split) - pos}
        lengths = split.lengths
        summary["tokens"][name] = {
            "median": round(float(np.median(lengths)), 1), "p90": round(float(np.percentile(lengths, 90)), 1),
            "max": int(lengths.max()), "total": int(lengths.sum()),
        }
    return summary
