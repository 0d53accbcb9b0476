"""Few labels: IMDB test accuracy against the number of labelled training reviews, with and without the
IMDB language model (`zoo pretrain`).

For each seed and each N: a seeded subset of N labelled reviews of IMDB's train split (half of each class;
10% of them the validation split, drawn from the reviews the language model did not read), written as files
beside the whole test split in the work folder, then two real `zoo train` processes on
`--data train=...,validation=...,test=...`: the classifier recipe from scratch (default `bilstm`) and the
fine-tuning recipe from the language model (default `bilstm-ft --init-from LM`). A point uses N labels in all;
the test split is evaluated once per run, with the best validation epoch's weights.

    python bench/label_curve.py --lm runs/lm --labels 500 1000 2000 5000 --seeds 0 --parallel 2 \
        --picture docs/results/label-curve.png --results

Each run's summary is appended to WORK/results.jsonl as it ends and a rerun skips the runs already there, so
a stopped bench picks up where it was. Prints the table (mean test accuracy per N and arm, each seed's in
brackets) and, with --picture, draws the curve. Full runs take minutes to tens of minutes each on a 2-core
CPU: this is a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from results_table import replace_rows

ROOT = Path(__file__).resolve().parents[1]
IMDB = ROOT.parent / "shared" / "datasets" / "imdb"
BEGIN, END = "<!-- LABELS:BEGIN -->", "<!-- LABELS:END -->"


def write_jsonl(path: Path, texts: list[str], labels: list[str]) -> None:
    from zoo.files import atomic_write

    atomic_write(path, lambda f: f.writelines(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels)),
                 mode="w")


def prepare(work: Path, data: str, lm: Path, sizes: list[int], seeds: list[int]) -> dict[tuple[int, int], str]:
    """The `--data` value of each (N, seed), as files in `work` (written once; never in the repository): N
    labelled reviews of the train split, half of each class, as 90% train and 10% validation, and the test
    split less the reviews the language model read. The validation reviews come from those the model did not
    read (its own held-out reviews: `zoo train --init-from` refuses validation texts the model read); the
    train reviews from the rest. For one seed the subsets are nested: the 500 reviews are among the 1,000."""
    from zoo.data.sources import load_raw
    from zoo.data.text import text_digests

    raw = load_raw(data, None)
    train, test = raw["train"], raw["test"]
    names = train.features["label"].names
    learned = np.load(lm / "texts.npy")
    test_file = work / "test.jsonl"
    if not test_file.exists():
        # IMDB's train split repeats some test reviews word for word: the language model read those, so they
        # leave the test split here (as `zoo train --init-from` would insist), for both arms alike.
        kept = np.flatnonzero(~np.isin(text_digests(test["text"], distinct=False), learned)).tolist()
        print(f"test split: {len(kept):,} of {len(test):,} reviews (the rest repeat a review the language model "
              "read)", file=sys.stderr)
        rows = test.select(kept)
        write_jsonl(test_file, rows["text"], [names[y] for y in rows["label"]])
    labels = np.array(train["label"])
    unread = ~np.isin(text_digests(train["text"], distinct=False), learned)
    sources = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        pools = {part: [rng.permutation(np.flatnonzero((labels == c) & (unread == (part == "validation"))))
                        for c in range(len(names))] for part in ("validation", "train")}
        for n in sizes:
            files = {}
            for part, count in (("validation", n // 10), ("train", n - n // 10)):
                files[part] = work / f"{part}-{n}-seed{seed}.jsonl"
                per_class = [pool[: count // len(names)] for pool in pools[part]]
                if min(len(chosen) for chosen in per_class) < count // len(names):
                    sys.exit(f"{n} labels need {count} {part} reviews; the train split has too few")
                if not files[part].exists():
                    rows = train.select(np.sort(np.concatenate(per_class)).tolist())
                    write_jsonl(files[part], rows["text"], [names[y] for y in rows["label"]])
            sources[n, seed] = f"train={files['train']},validation={files['validation']},test={test_file}"
    return sources


def train(job: dict, threads: int) -> dict:
    """One real `zoo train ... --json` process; its summary with the whole command's minutes."""
    command = [sys.executable, "-m", "zoo.cli", "train", job["recipe"], "--data", job["data"], "--seed",
               str(job["seed"]), "--threads", str(threads), "--out", job["out"], "--no-progress", "--json",
               *job["extra"]]
    print("$ zoo " + " ".join(command[3:]), file=sys.stderr, flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    minutes = (time.perf_counter() - started) / 60
    if result.returncode != 0:
        raise RuntimeError(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return {key: job[key] for key in ("arm", "labels", "seed")} | {
        "test_accuracy": summary["test_accuracy"], "best_validation_accuracy": summary["best_validation_accuracy"],
        "best_epoch": summary["best_epoch"], "epochs": summary["epochs"], "steps": summary["steps"],
        "minutes": round(minutes, 2), "notes": summary["notes"], "run_dir": job["out"],
        "command": "zoo train " + " ".join(command[4:])}


def table(rows: list[dict], arms: list[str]) -> tuple[list[str], dict[str, str]]:
    """The table's header and its rows, keyed by the start of each row's line (for replace_rows)."""
    header = ["| labelled reviews | " + " | ".join(f"{arm}: test acc" for arm in arms)
             + " | " + " | ".join(f"{arm}: val acc, epochs, minutes" for arm in arms) + " |",
             "| --- |" + " --- |" * (2 * len(arms))]
    lines = {}
    for n in sorted({r["labels"] for r in rows}):
        tests, others = [], []
        for arm in arms:
            runs = sorted((r for r in rows if r["labels"] == n and r["arm"] == arm), key=lambda r: r["seed"])
            if not runs:
                tests.append("-")
                others.append("-")
                continue
            mean = lambda key: statistics.mean(r[key] for r in runs)  # noqa: E731
            seeds = ", ".join(f"{100 * r['test_accuracy']:.2f}" for r in runs)
            each = f" ({seeds})" if len(runs) > 1 else ""
            tests.append(f"**{100 * mean('test_accuracy'):.2f}**{each}")
            others.append(f"{100 * mean('best_validation_accuracy'):.2f}, {mean('epochs'):.3g}, "
                          f"{mean('minutes'):.1f}")
        lines[f"| {n:,} |"] = f"| {n:,} | " + " | ".join(tests) + " | " + " | ".join(others) + " |"
    return header, lines


def picture(rows: list[dict], arms: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for arm in arms:
        runs = [r for r in rows if r["arm"] == arm]
        sizes = sorted({r["labels"] for r in runs})
        means = [100 * statistics.mean(r["test_accuracy"] for r in runs if r["labels"] == n) for n in sizes]
        line, = axis.plot(sizes, means, marker="o", label=arm)
        axis.scatter([r["labels"] for r in runs], [100 * r["test_accuracy"] for r in runs], s=10,
                     color=line.get_color(), alpha=0.5)
    axis.set_xscale("log")
    sizes = sorted({r["labels"] for r in rows})
    axis.set_xticks(sizes, [f"{n:,}" for n in sizes])
    axis.minorticks_off()
    axis.set_xlabel("labelled training reviews (validation carved from them)")
    axis.set_ylabel("IMDB test accuracy (%)")
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm", required=True, help="the `zoo pretrain` run the fine-tuning recipe starts from")
    parser.add_argument("--data", default=str(IMDB), help="a labelled dataset with train, test and label names")
    parser.add_argument("--labels", type=int, nargs="+", default=[500, 1000, 2000, 5000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scratch-recipe", default="bilstm")
    parser.add_argument("--ft-recipe", default="bilstm-ft")
    parser.add_argument("--arms", nargs="+", choices=["scratch", "lm"], default=["scratch", "lm"],
                        help="from scratch, from the language model, or both")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every run of both arms")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-labels",
                        help="the subsets, the runs and results.jsonl")
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time (one thread each with 2+)")
    parser.add_argument("--threads", type=int, default=None, help="threads per run (default: cores / parallel)")
    parser.add_argument("--picture", type=Path, default=None, help="draw the curve into this PNG")
    parser.add_argument("--results", action="store_true", help="write the table into docs/results/label-curve.md")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.parallel)
    sources = prepare(args.work, args.data, Path(args.lm), args.labels, args.seeds)
    settings = [f"--set={s}" for s in args.settings]
    every = {"scratch": ("from scratch", args.scratch_recipe, settings),
             "lm": ("from the LM", args.ft_recipe, ["--init-from", args.lm, *settings])}
    arms = {name: (recipe, extra) for key, (name, recipe, extra) in every.items() if key in args.arms}
    record = args.work / "results.jsonl"
    done = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    finished = {(r["arm"], r["labels"], r["seed"]) for r in done}
    # In the order of --labels (the figures that matter most first: each row is saved as it ends).
    jobs = [{"arm": arm, "labels": n, "seed": seed, "recipe": recipe, "extra": extra, "data": sources[n, seed],
             "out": str(args.work / f"{recipe}-{n}-seed{seed}")}
            for n in args.labels for seed in args.seeds
            for arm, (recipe, extra) in arms.items() if (arm, n, seed) not in finished]
    failed = 0
    with ThreadPoolExecutor(args.parallel) as pool:
        for future in as_completed([pool.submit(train, job, threads) for job in jobs]):
            try:
                row = future.result()
            except RuntimeError as exc:  # the other runs go on; the bench exits 1 at the end
                print(exc, file=sys.stderr, flush=True)
                failed += 1
                continue
            print(json.dumps(row), flush=True)
            with record.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done.append(row)
    rows = [r for r in done if r["labels"] in args.labels and r["seed"] in args.seeds]
    header, lines = table(rows, list(arms))
    print("\n".join(header + list(lines.values())))
    if args.picture:
        picture(rows, list(arms), args.picture)
    if args.results:
        replace_rows(ROOT / "docs" / "results" / "label-curve.md", BEGIN, END, header, lines)
    if failed:
        sys.exit(f"{failed} run(s) failed (above)")


if __name__ == "__main__":
    main()
