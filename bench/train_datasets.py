"""Recipes across datasets: train each recipe on each dataset from scratch, print (and record) test accuracy.

For each (dataset, recipe): `zoo train RECIPE --data DIR --json` in a fresh process; test accuracy and
macro-F1 (best validation epoch, evaluated once), best validation accuracy, epochs, wall seconds of the
whole command, tokens/s, and the command. With --readme, each row of the table between the DATASETS
markers in README.md is replaced (or added); the rest of the block is kept.

    python bench/train_datasets.py --datasets sst2 sst5 --recipes bilstm-sent gru-sent [--readme]
    python bench/train_datasets.py --datasets imdb --recipes bilstm --set train.eval_every=0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from readme_table import replace_rows

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
BEGIN, END = "<!-- DATASETS:BEGIN -->", "<!-- DATASETS:END -->"
# Published test accuracies (each dataset's README in ../shared/datasets).
ANCHORS = {
    "imdb": "seed tutorial 85.0, Maas et al. 88.89, NBSVM-bi 91.2",
    "sst2": "CNN-rand 82.7, CNN-static 86.8 (Kim 2014), Tree-LSTM 88.0",
    "sst5": "CNN-rand 45.0 (Kim 2014), BiLSTM 49.1, Tree-LSTM 51.0 (Tai et al. 2015, GloVe)",
}
HEADER = ["| dataset | recipe | test acc | test macro-F1 | best val acc (epoch) | epochs | wall s | tokens/s | anchors (test acc) | command |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]


def run(dataset: str, recipe: str, runs: Path, extra: list[str], threads: int | None) -> dict:
    out = runs / f"{dataset}-{recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    data = SHARED / dataset
    command = ["zoo", "train", recipe, "--data", str(data), "--out", str(out), "--no-progress", "--json", *extra]
    command += ["--threads", str(threads)] if threads else []
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "zoo.cli", *command[1:]], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{dataset} / {recipe} failed:\n{result.stderr}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    shown = ["zoo", "train", recipe, "--data", f"../shared/datasets/{dataset}", *extra]
    shown += ["--threads", str(threads)] if threads else []
    return summary | {"dataset": dataset, "wall_seconds": round(wall, 1), "command": " ".join(shown)}


def table_row(r: dict) -> str:
    return (f"| {r['dataset']} | {r['recipe']} | {100 * r['test_accuracy']:.2f} | {100 * r['test_macro_f1']:.2f} | "
            f"{100 * r['best_validation_accuracy']:.2f} ({r['best_epoch']}) | {r['epochs']} | {r['wall_seconds']:,.0f} | "
            f"{r['tokens_per_second']:,.0f} | {ANCHORS.get(r['dataset'], '')} | `{r['command']}` |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sst2", "sst5"], help="folders under ../shared/datasets")
    parser.add_argument("--recipes", nargs="+", required=True)
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench"))
    parser.add_argument("--set", dest="extra", action="append", default=[], help="KEY=VALUE for every run")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per run (default: all cores)")
    parser.add_argument("--readme", action="store_true", help="write the rows into README.md")
    args = parser.parse_args()
    rows = []
    for dataset in args.datasets:
        for recipe in args.recipes:
            row = run(dataset, recipe, Path(args.runs), [f"--set={s}" for s in args.extra], args.threads)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("\n".join(HEADER + [table_row(r) for r in rows]))
    if args.readme:
        replace_rows(ROOT / "README.md", BEGIN, END, HEADER,
                     {f"| {r['dataset']} | {r['recipe']} |": table_row(r) for r in rows})


if __name__ == "__main__":
    main()
