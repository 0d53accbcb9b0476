"""Cold and warm timings of the data pipeline: load, train the tokenizer, encode train + validation + test.

Each run is a fresh `zoo data --json` process. Cold: empty zoo and datasets
caches. Warm: the same caches again (everything reused). Prints seconds per
source, the median over --repeats warm runs.

    python bench/data_pipeline.py [--hub ../shared/datasets/imdb] [--tarball .../aclImdb_v1.tar.gz]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "imdb"


def timed_run(source: str, cache: Path) -> tuple[float, dict]:
    env = dict(os.environ, ZOO_CACHE=str(cache / "zoo"), HF_DATASETS_CACHE=str(cache / "hf"))
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "data", "--data", source, "--json"],
                         env=env, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - start, json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub", default=str(SHARED))
    parser.add_argument("--tarball", default=str(SHARED / "aclImdb_v1.tar.gz"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'source':<10} {'cold s':>8} {'warm s':>8}  tokens (train median / p90 / max)")
    for label, source in (("hub", args.hub), ("tarball", args.tarball)):
        with tempfile.TemporaryDirectory() as tmp:
            cold, summary = timed_run(source, Path(tmp))
            warm = statistics.median(timed_run(source, Path(tmp))[0] for _ in range(args.repeats))
        t = summary["tokens"]["train"]
        print(f"{label:<10} {cold:>8.1f} {warm:>8.1f}  {t['median']:.0f} / {t['p90']:.0f} / {t['max']}", flush=True)


if __name__ == "__main__":
    main()
