"""Short labelled texts about three topics, written in any of the file formats the zoo reads."""

from __future__ import annotations

import random
from pathlib import Path

TOPICS = {
    "cooking": "oven flour butter simmer garlic recipe bake salt pan whisk".split(),
    "music": "guitar chorus melody drums album tempo verse singer chord bass".split(),
    "sports": "goal referee striker match season coach league penalty score team".split(),
}
FILLER = "the a of and with this that it was today my our some very".split()


def topic_rows(count: int, seed: int) -> list[dict]:
    """Short texts about one of three topics, with the topic name as a string label."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        topic = sorted(TOPICS)[index % 3]
        words = [rng.choice(TOPICS[topic]) if rng.random() < 0.4 else rng.choice(FILLER) for _ in range(rng.randint(4, 14))]
        rows.append({"body": " ".join(words), "topic": topic})
    return rows


def write(path: Path, rows: list[dict], text: str = "body", label: str = "topic") -> Path:
    """Write rows in the format the file's suffix names, with the given column names."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([{text: r["body"], label: r["topic"]} for r in rows])
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    return path
