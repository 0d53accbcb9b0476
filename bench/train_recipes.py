"""Full-IMDB training benchmark: train recipes with `zoo train --json`, print and record their figures.

For each recipe: test accuracy (best validation epoch, evaluated once), best
validation accuracy, wall seconds of the whole command, training seconds,
seconds per epoch, tokens/s, and the training seconds at which validation
accuracy first reached 85% (validation every 100 steps by default: --set train.eval_every=100).
With --results, each recipe's row in the table between the RESULTS markers of
docs/results/imdb-recipes.md is replaced (or added); the rest of that block is kept.

    python bench/train_recipes.py bilstm classic gru peephole bilstm-seed [--data DIR] [--results]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from results_table import replace_rows

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets" / "imdb"
BEGIN, END = "<!-- RESULTS:BEGIN -->", "<!-- RESULTS:END -->"


def run_recipe(recipe: str, data: str, out: Path, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "zoo.cli", "train", recipe, "--data", data, "--out", str(out),
               "--no-progress", "--json", *extra]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{recipe} failed:\n{result.stderr}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    reached = [r["train_seconds"] for r in records
               if r["type"] in ("validation", "epoch") and r.get("accuracy", r.get("validation_accuracy", 0)) >= 0.85]
    return summary | {
        "wall_seconds": round(wall, 1),
        "seconds_to_85": round(min(reached), 1) if reached else None,
        "seconds_per_epoch": round(summary["seconds"] / max(summary["epochs"], 1), 1),
        "command": "zoo train " + " ".join([recipe, "--data", data, *extra]),
    }


HEADER = ["| recipe | test acc | best val acc (epoch) | epochs | s / epoch | training s | wall s | val 85% at s | tokens/s |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]


def table_row(r: dict) -> str:
    to85 = f"{r['seconds_to_85']:.0f}" if r["seconds_to_85"] is not None else "never"
    return (f"| {r['recipe']} | {100 * r['test_accuracy']:.2f} | {100 * r['best_validation_accuracy']:.2f} ({r['best_epoch']}) | "
            f"{r['epochs']} | {r['seconds_per_epoch']:.0f} | {r['seconds']:,.0f} | {r['wall_seconds']:,.0f} | "
            f"{to85} | {r['tokens_per_second']:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+")
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench"))
    parser.add_argument("--results", action="store_true", help="write the table into docs/results/imdb-recipes.md")
    parser.add_argument("--set", dest="extra", action="append", default=["train.eval_every=100"])
    args = parser.parse_args()
    rows = []
    for recipe in args.recipes:
        out = Path(args.runs) / f"{recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
        row = run_recipe(recipe, args.data, out, [f"--set={s}" for s in args.extra])
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("\n".join(HEADER + [table_row(r) for r in rows]))
    if args.results:
        replace_rows(ROOT / "docs" / "results" / "imdb-recipes.md", BEGIN, END, HEADER, {f"| {r['recipe']} |": table_row(r) for r in rows})


if __name__ == "__main__":
    main()
