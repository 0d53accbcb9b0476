"""Recipes across datasets: train each recipe on each dataset from scratch, print (and record) test accuracy.

For each (dataset, recipe): `zoo train RECIPE --data DIR --json` in a fresh process; test accuracy and
macro-F1 (best validation epoch, evaluated once), best validation accuracy, epochs, wall seconds of the
whole command, tokens/s, and the command. With --results, each row of the table between the DATASETS
markers of docs/results/datasets.md is replaced (or added); the rest of the block is kept.

    python bench/train_datasets.py --datasets sst2 sst5 --recipes bilstm classic [--seeds 0 1 2] [--results]
    python bench/train_datasets.py --datasets imdb --recipes bilstm --set train.eval_every=0
    python bench/train_datasets.py --datasets sst2 --recipes bilstm-ft --init-from runs/lm-seed0 \
        --row-name "bilstm-ft from an IMDB LM" --seeds 0 1 2     # transfer from `zoo pretrain` on IMDB

With several seeds, a row shows the mean test accuracy and each seed's in brackets; the other columns are
means too (epochs and wall seconds per run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from results_table import replace_rows

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


def table_row(name: str, runs: list[dict]) -> str:
    """One row for a recipe on a dataset: a single run's figures, or the seeds' means (test accuracy per seed)."""
    r, mean = runs[0], lambda key: statistics.mean(one[key] for one in runs)
    test = f"{100 * mean('test_accuracy'):.2f}"
    if len(runs) > 1:
        test += " (" + ", ".join(f"{100 * one['test_accuracy']:.2f}" for one in runs) + ")"
    best = f"{100 * r['best_validation_accuracy']:.2f} ({r['best_epoch']})" if len(runs) == 1 else \
        f"{100 * mean('best_validation_accuracy'):.2f}"
    command = r["command"] + (f" --seed {{{','.join(str(one['seed']) for one in runs)}}}" if len(runs) > 1 else "")
    return (f"| {r['dataset']} | {name} | {test} | {100 * mean('test_macro_f1'):.2f} | {best} | {mean('epochs'):.3g} | "
            f"{mean('wall_seconds'):,.0f} | {mean('tokens_per_second'):,.0f} | {ANCHORS.get(r['dataset'], '')} | "
            f"`{command}` |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sst2", "sst5"], help="folders under ../shared/datasets")
    parser.add_argument("--recipes", nargs="+", required=True)
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench"))
    parser.add_argument("--set", dest="extra", action="append", default=[], help="KEY=VALUE for every run")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per run (default: all cores)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="train each row once per seed (--seed N)")
    parser.add_argument("--init-from", default=None, help="a `zoo pretrain` run every recipe starts from")
    parser.add_argument("--limit-train", type=int, default=None, help="train on N rows of each train split (small data)")
    parser.add_argument("--row-name", default=None, help="the table's name for the recipe (default: its name)")
    parser.add_argument("--results", action="store_true", help="write the table into docs/results/datasets.md")
    args = parser.parse_args()
    extra = [f"--set={s}" for s in args.extra] + (["--init-from", args.init_from] if args.init_from else [])
    extra += ["--limit-train", str(args.limit_train)] if args.limit_train else []
    rows = {}
    for dataset in args.datasets:
        for recipe in args.recipes:
            seeded = []
            for seed in args.seeds or [None]:
                row = run(dataset, recipe, Path(args.runs), extra + (["--seed", str(seed)] if seed is not None else []),
                          args.threads)
                print(json.dumps(row | {"seed": seed}), flush=True)
                seeded.append(row | {"seed": seed, "command": row["command"].replace(f" --seed {seed}", "")})
            name = args.row_name or recipe
            rows[f"| {dataset} | {name} |"] = table_row(name, seeded)
    print("\n".join(HEADER + list(rows.values())))
    if args.results:
        replace_rows(ROOT / "docs" / "results" / "datasets.md", BEGIN, END, HEADER, rows)


if __name__ == "__main__":
    main()
