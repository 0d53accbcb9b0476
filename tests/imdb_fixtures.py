"""Tiny IMDB look-alikes in all three layouts: an aclImdb folder, its tarball, and a Hub parquet folder.

Reviews are built from sentiment-bearing and neutral words so that a model can
learn them in seconds; label 1 reviews lean on positive words.
"""

from __future__ import annotations

import random
import tarfile
from pathlib import Path

POSITIVE = "great wonderful superb moving brilliant delightful charming masterful touching fun".split()
NEGATIVE = "awful boring dull terrible clumsy tedious bland wooden painful weak".split()
NEUTRAL = ("the film movie plot actor scene story camera director music script cast ending it was and "
           "a of with this that character dialogue minutes").split()


def make_reviews(count: int, seed: int) -> list[tuple[str, int, int]]:
    """(text, label, rating) with equal numbers of each label and lengths from 3 to ~200 words."""
    rng = random.Random(seed)
    reviews = []
    for index in range(count):
        label = index % 2
        words = rng.choice(POSITIVE if label else NEGATIVE)
        length = int(rng.lognormvariate(3.0, 0.8)) + 3
        mood = POSITIVE if label else NEGATIVE
        body = [rng.choice(mood) if rng.random() < 0.25 else rng.choice(NEUTRAL) for _ in range(length)]
        text = f"{words.capitalize()} {' '.join(body)}.<br /><br />{rng.choice(NEUTRAL)} {rng.choice(mood)}."
        rating = rng.choice([7, 8, 9, 10] if label else [1, 2, 3, 4])
        reviews.append((text, label, rating))
    return reviews


def write_stanford_folder(root: Path, train: int = 200, test: int = 100, unsup: int = 0) -> Path:
    """root/aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt; returns root/aclImdb."""
    base = root / "aclImdb"
    for split, count, seed in (("train", train, 1), ("test", test, 2)):
        for index, (text, label, rating) in enumerate(make_reviews(count, seed)):
            folder = base / split / ("pos" if label else "neg")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index}_{rating}.txt").write_text(text, encoding="utf-8")
    if unsup:
        folder = base / "train" / "unsup"
        folder.mkdir(parents=True, exist_ok=True)
        for index, (text, _, _) in enumerate(make_reviews(unsup, 3)):
            (folder / f"{index}_0.txt").write_text(text, encoding="utf-8")
    (base / "README").write_text("tiny aclImdb fixture\n")
    return base


def write_tarball(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as archive:
        archive.add(folder, arcname="aclImdb")
    return target


def write_hub_folder(root: Path, train: int = 200, test: int = 100, labels_override: dict | None = None,
                     unsup: int = 0) -> Path:
    """root/plain_text/{train,test}-00000-of-00001.parquet with text and label columns.

    `unsup` > 0 adds an unsupervised split of that many unlabelled reviews. Like the Hub's IMDB, the label column is a ClassLabel (neg, pos) stored in the parquet metadata; a
    labels_override outside {0, 1} leaves it a plain int column.
    """
    from datasets import ClassLabel, Dataset, Features, Value

    (root / "plain_text").mkdir(parents=True, exist_ok=True)
    for split, count, seed in (("train", train, 1), ("test", test, 2)):
        rows = sorted(make_reviews(count, seed), key=lambda r: r[1])
        labels = [r[1] for r in rows]
        if labels_override and split in labels_override:
            labels[0] = labels_override[split]
        named = set(labels) <= {0, 1}
        features = Features({"text": Value("string"),
                             "label": ClassLabel(names=["neg", "pos"]) if named else Value("int64")})
        Dataset.from_dict({"text": [r[0] for r in rows], "label": labels}, features=features).to_parquet(
            str(root / "plain_text" / f"{split}-00000-of-00001.parquet"))
    if unsup:  # like the Hub's unsupervised split: label -1
        Dataset.from_dict({"text": [r[0] for r in make_reviews(unsup, 3)], "label": [-1] * unsup}).to_parquet(
            str(root / "plain_text" / "unsupervised-00000-of-00001.parquet"))
        splits = "".join(f"  - split: {name}\n    path: plain_text/{name}-*\n" for name in ("train", "test", "unsupervised"))
        (root / "README.md").write_text(f"---\nconfigs:\n- config_name: plain_text\n  default: true\n  data_files:\n"
                                        f"{splits}---\n")  # the Hub's way to name a split `unsupervised`
    return root
