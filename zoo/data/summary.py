"""`zoo data`: load the splits, build or reuse the tokenizer, and summarize classes, sizes and token lengths."""

from __future__ import annotations

import numpy as np

from zoo.config.sections import TokenizerConfig
from zoo.data.encoding import encode_splits
from zoo.data.splits import DataSpec, load_splits
from zoo.data.tokenizer import tokenizer_for


def data_summary(spec: DataSpec, config: TokenizerConfig) -> dict:
    splits = load_splits(spec)
    tokenizer = tokenizer_for(splits, config)
    encoded = encode_splits(splits, tokenizer)
    summary: dict = {"source": splits.source, "columns": list(splits.columns), "classes": splits.classes,
                     "own_validation": splits.own_validation, "splits": {}, "tokenizer": {
                         "vocab_size": tokenizer.vocab_size, "path": str(tokenizer.path), "sha256": tokenizer.sha256},
                     "tokens": {}}
    for name, split in encoded.items():
        counts = np.bincount(split.labels, minlength=len(splits.classes))
        summary["splits"][name] = {"rows": len(split), "labels": dict(zip(splits.classes, map(int, counts)))}
        lengths = split.lengths
        summary["tokens"][name] = {
            "median": round(float(np.median(lengths)), 1), "p90": round(float(np.percentile(lengths, 90)), 1),
            "max": int(lengths.max()), "total": int(lengths.sum()),
        }
    return summary
