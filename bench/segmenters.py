"""How much the choice of SentencePiece segmenter matters: onnxruntime-extensions' op (what the zoo and every
`--with-tokenizer` export use wherever it is installed) against the sentencepiece library installed here (what
Python 3.14 gets, with no onnxruntime-extensions wheels).

    python bench/segmenters.py --data ../shared/datasets/imdb [--run RUN]

Prints, for the test split: the texts whose ids differ between the two; with --run, the run's test predictions
(PyTorch, best weights) from each segmenter's ids and how many differ, and its test accuracy from each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path

import numpy as np


def segment(tokenizer, texts: list[str], library: bool) -> list[list[int]]:
    """The ids of `texts` from onnxruntime-extensions (library False) or the sentencepiece library (True)."""
    from zoo.data.segmenter import SEGMENTER_ENV, Segmenter

    previous = os.environ.pop(SEGMENTER_ENV, None)
    if library:
        os.environ[SEGMENTER_ENV] = "sentencepiece"
    try:
        segmenter = Segmenter(tokenizer.path.read_bytes())
    finally:
        os.environ.pop(SEGMENTER_ENV, None)
        if previous is not None:
            os.environ[SEGMENTER_ENV] = previous
    from zoo.data.text import normalize_text

    started = time.perf_counter()
    ids = segmenter.encode([normalize_text(t) for t in texts])
    print(f"{segmenter.name}: {len(texts):,} texts in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/datasets/imdb")
    parser.add_argument("--run", type=Path, default=None, help="a trained run: compare its test predictions too")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()

    from zoo.config.sections import TokenizerConfig
    from zoo.data.splits import load_splits
    from zoo.data.tokenizer import tokenizer_for
    from zoo.runs.loaders import open_run, run_classifier, run_data, run_tokenizer

    run, record = open_run(args.run) if args.run else (None, None)
    splits = run_data(run, record, args.data) if run else load_splits(args.data)
    tokenizer = run_tokenizer(run, record) if run else tokenizer_for(splits, TokenizerConfig())
    dataset = splits.named()[args.split]
    texts, labels = list(dataset["text"]), np.asarray(dataset["label"])
    ops, library = segment(tokenizer, texts, False), segment(tokenizer, texts, True)
    differ = [i for i, (a, b) in enumerate(zip(ops, library)) if a != b]
    row = {"date": date.today().isoformat(), "data": args.data, "split": args.split, "texts": len(texts),
           "ids_differ": len(differ), "onnxruntime_extensions": version("onnxruntime-extensions"),
           "sentencepiece": version("sentencepiece"), "tokenizer_sha256": tokenizer.sha256[:16],
           "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    if run is not None:
        from zoo.data.encoding import EncodedSplit
        from zoo.inference.logits import split_logits
        from zoo.inference.metrics import predicted_classes

        model, max_tokens = run_classifier(run, record, tokenizer), record.config.train.max_tokens
        predicted = {}
        for name, ids in (("onnxruntime_extensions", ops), ("sentencepiece", library)):
            logits = split_logits(model, EncodedSplit.from_lists(name, ids, labels), max_tokens=max_tokens)
            predicted[name] = predicted_classes(logits)
            row[f"accuracy_{name}"] = round(float((predicted[name] == labels).mean()), 5)
        row["run"] = str(args.run)
        row["predictions_differ"] = int((predicted["onnxruntime_extensions"] != predicted["sentencepiece"]).sum())
    print(json.dumps(row))


if __name__ == "__main__":
    main()
