"""What language-model pretraining buys on IMDB: test accuracy against pretraining minutes.

For each seed: `zoo pretrain bilstm-lm --budget B` keeping snapshots every S
minutes, then `zoo train bilstm-ft --init-from` each snapshot (and the kept
lm.pt), and `zoo train bilstm-ft` with no pretraining (0 minutes). Prints one
row per (minutes, seed), the mean per budget, writes the curve as a PNG and,
with --results, the table into docs/results/pretraining.md between the PRETRAINING markers.

    python bench/pretrain_finetune.py --data ../shared/datasets/imdb --budget 60 --snapshot-minutes 15 --seeds 0 1
    python bench/pretrain_finetune.py --processes 2 --threads 1 ...     # one process per core (torchrun)
    python bench/pretrain_finetune.py --pretrain-runs runs/lm-seed0 --snapshots minutes-0030 --no-baseline
    python bench/pretrain_finetune.py --pretrain-runs runs/lm-seed3 --ft-seeds 0 1     # two fine-tunes per LM
    python bench/pretrain_finetune.py --pretrain-runs runs/lm-seed0 --snapshots lm --no-baseline \
        --ft-set train.lr_decay=1.0 train.unfreeze_fraction=0.0     # the schedules' ablation

Every command runs as a real `zoo` process; the pretraining runs can be reused
(--pretrain-runs) to fine-tune more snapshots later. Full runs take hours on a
2-core CPU: this is a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from results_table import replace_rows

ROOT = Path(__file__).resolve().parent.parent


def zoo(*args: str, processes: int = 1) -> dict:
    """Run `zoo ... --json` (under torchrun with `processes` > 1) and return its summary (the last stdout line)
    with the command's whole wall-clock time added (`wall_seconds`: loading, validations and test included)."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
                if processes > 1 else [sys.executable])
    command = [*launcher, "-m", "zoo.cli", *args, "--json"]
    print("$ " + " ".join(command[1:]), file=sys.stderr, flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall_seconds = time.perf_counter() - started
    if result.returncode != 0:  # zoo's own message repeated last: under torchrun the launcher's traceback ends stderr
        errors = dict.fromkeys(line for line in result.stderr.splitlines() if line.startswith("Error:"))
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}\n" + "\n".join(errors))
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "wall_seconds": wall_seconds}


def pretrain(args, seed: int) -> Path:
    out = args.out / f"lm-seed{seed}"
    zoo("pretrain", args.lm_recipe, "--data", args.data, "--out", str(out), "--seed", str(seed),
        "--budget", str(args.budget), "--set", f"pretrain.snapshot_minutes={args.snapshot_minutes}",
        "--threads", str(args.threads), processes=args.processes)
    return out


def fine_tune(args, seed: int, start: Path | None, name: str) -> dict:
    extra = (["--init-from", str(start)] if start else []) + [f"--set={s}" for s in args.ft_set]
    tag = "".join(f"-{s.replace('=', '')}" for s in args.ft_set)
    return zoo("train", args.ft_recipe, "--data", args.data, "--out", str(args.out / f"ft-seed{seed}-{name}{tag}"),
               "--seed", str(seed), "--threads", str(args.threads), *extra, processes=args.processes)


def starting_points(run: Path, wanted: list[str] | None) -> list[tuple[float, Path]]:
    """(pretraining minutes, weights) for each snapshot (all, or those whose name starts with one of `wanted`)
    and for the kept lm.pt (at the minutes of its step)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    points = [(r["minutes"], run / r["file"]) for r in records if r["type"] == "snapshot"]
    if wanted is not None:
        points = [(m, p) for m, p in points if any(p.name.startswith(w) for w in wanted)]
    card = json.loads((run / "config.json").read_text())
    checks = [r for r in records if r["type"] in ("validation", "epoch") and r.get("best")]
    if checks and (wanted is None or "lm" in wanted):
        points.append((checks[-1]["train_seconds"] / 60, run / "lm.pt"))
    assert card.get("kind") == "pretrain", run
    return sorted(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "imdb"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench-pretrain"))
    parser.add_argument("--lm-recipe", default="bilstm-lm")
    parser.add_argument("--ft-recipe", default="bilstm-ft")
    parser.add_argument("--budget", type=float, default=60.0, help="pretraining minutes")
    parser.add_argument("--snapshot-minutes", type=float, default=15.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=2, help="threads per process")
    parser.add_argument("--processes", type=int, default=1,
                        help="run every zoo command under torchrun with this many processes (on a CPU: one per core, "
                             "--threads 1)")
    parser.add_argument("--pretrain-runs", type=Path, nargs="*", default=None,
                        help="reuse these pretrain runs (their seeds are read from them) instead of pretraining")
    parser.add_argument("--snapshots", nargs="*", default=None,
                        help="fine-tune only the snapshots whose names start with these (and `lm` for lm.pt)")
    parser.add_argument("--ft-seeds", type=int, nargs="*", default=None,
                        help="fine-tune each starting point with these seeds (default: the pretraining run's seed)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the fine-tuning recipe without pretraining")
    parser.add_argument("--ft-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="settings for the fine-tuning runs (an ablation; its rows are not written to docs/results)")
    parser.add_argument("--results", action="store_true", help="write the table into docs/results/pretraining.md")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    runs = ([(json.loads((r / "config.json").read_text())["seed"], r) for r in args.pretrain_runs]
            if args.pretrain_runs else [(seed, pretrain(args, seed)) for seed in args.seeds])
    # The longest pretraining first, each seed in turn, no pretraining last: the figures that matter most come first
    # (each row is printed and saved as it finishes, so a stopped bench keeps them).
    jobs = sorted(((minutes, seed, weights, f"{run.name}-{weights.stem}")
                   for pretrain_seed, run in runs for seed in args.ft_seeds or [pretrain_seed]
                   for minutes, weights in starting_points(run, args.snapshots)), key=lambda job: -job[0])
    if not args.no_baseline:
        seeds = dict.fromkeys(args.ft_seeds or [seed for seed, _ in runs])
        jobs += [(0.0, seed, None, "scratch") for seed in seeds]
    rows = []
    for minutes, seed, weights, name in jobs:
        row = {"minutes": minutes, "seed": seed, "weights": str(weights or "no pretraining"),
               **fine_tune(args, seed, weights, name)}
        print(f"{row['minutes']:6.1f} min  seed {row['seed']}  validation {100 * row['best_validation_accuracy']:.2f}  "
              f"test {100 * row['test_accuracy']:.2f}  fine-tune {row['wall_seconds'] / 60:.1f} min (training "
              f"{row['seconds'] / 60:.1f})  {row['weights']}", flush=True)
        rows.append(row)
        (args.out / "rows.json").write_text(json.dumps(rows, indent=2))
    by_minutes: dict[float, list[dict]] = {}
    for row in rows:
        by_minutes.setdefault(round(row["minutes"]), []).append(row)
    table = {}
    for minutes, group in sorted(by_minutes.items()):
        accuracies = [100 * r["test_accuracy"] for r in group]
        minutes_tuning = max(r["wall_seconds"] for r in group) / 60
        table[f"| {minutes:.0f} |"] = (f"| {minutes:.0f} | {', '.join(f'{a:.2f}' for a in accuracies)} | "
                                       f"{statistics.mean(accuracies):.2f} | {minutes_tuning:.1f} | "
                                       f"{date.today().isoformat()} |")
    print("\n".join(table.values()))
    _plot(by_minutes, args.out / "pretraining-curve.png")
    if args.results and not args.ft_set:
        header = ["| pretraining minutes | test accuracy per seed (%) | mean (%) "
                  "| fine-tuning minutes, whole command (max) | date |", "| --- | --- | --- | --- | --- |"]
        replace_rows(ROOT / "docs" / "results" / "pretraining.md", "<!-- PRETRAINING:BEGIN -->", "<!-- PRETRAINING:END -->", header, table)


def _plot(by_minutes: dict[float, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for minutes, group in sorted(by_minutes.items()):
        axis.scatter([minutes] * len(group), [100 * r["test_accuracy"] for r in group], color="grey", s=12)
    means = [(m, 100 * statistics.mean(r["test_accuracy"] for r in g)) for m, g in sorted(by_minutes.items())]
    axis.plot([m for m, _ in means], [a for _, a in means], marker="o", label="mean over seeds")
    axis.set_xlabel("pretraining minutes (bilstm-lm)")
    axis.set_ylabel("IMDB test accuracy after fine-tuning (%)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"curve: {path}")


if __name__ == "__main__":
    main()
