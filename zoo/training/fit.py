"""Settings that follow the data: a recipe's `small_data` settings, for a small set of short texts.

The built-in recipes were tuned on IMDB's 22,500 long reviews. On a few thousand sentences the same models
overfit sooner, and more dropout helps (docs/results/training-length.md). A recipe may name such settings in
its `small_data` table; a new run takes them when its training split is small and its texts are short, after
the user's `--set`s (which always win), and says so. The decision is recorded in config.json under `fit`, so a
resumed run keeps it.
"""

from __future__ import annotations

import statistics
from typing import Any

from zoo.registry.resolve import with_settings
from zoo.runs.record import RunRecord

SMALL_DATA_TEXTS = 20_000  # fewer training texts than this ...
SHORT_TEXT_WORDS = 50  # ... whose median is under this many words: a small set of short texts


def fit_to_texts(record: RunRecord, texts: list[str]) -> str | None:
    """Decide, once, whether the run takes its recipe's small_data settings; update the record (its config and
    `fit`) and return the line to show, or None when there was nothing to decide."""
    fit = record.setup.get("fit")
    if not fit or "small_data" in fit:  # no such settings, or decided before an interruption
        return None
    words = statistics.median(len(text.split()) for text in texts) if texts else 0
    small = len(texts) < SMALL_DATA_TEXTS and words < SHORT_TEXT_WORDS
    settings = fit["small_data_settings"]
    record.setup["fit"] = fit | {"training_texts": len(texts), "median_words": words, "small_data": small}
    if small:
        record.config = with_settings(record.config, settings)
    return fit_line(record.setup["fit"])


def fit_line(fit: dict[str, Any]) -> str:
    """The decision, in words."""
    size = f"{fit['training_texts']:,} training texts, median {fit['median_words']:g} words"
    settings = " ".join(f"{key}={value}" for key, value in fit["small_data_settings"].items())
    if fit["small_data"]:
        return (f"fit: {size}: a small set of short texts (under {SMALL_DATA_TEXTS:,} texts and {SHORT_TEXT_WORDS} "
                f"words), so the recipe's small_data settings apply: {settings} (--set any of them to choose yours)")
    return (f"fit: {size}: the recipe's usual settings (its small_data settings, {settings}, are for small sets of "
            "short texts)")
