"""Is a training run repeatable? Train the same command several times, under several CPU instruction sets, and
compare what came out: the tokenizer's bytes, every logged loss, the weights, and test accuracy.

Each variant is an environment (and extra arguments) for the `zoo train` process; "native" is the machine's own
(AVX-512 where it has it), "avx2" caps PyTorch's kernels, MKL and oneDNN at AVX2 as on an AVX2-only machine,
"nosimd" turns PyTorch's vectorised kernels off, "threads2" trains on 2 threads. Every run starts from an empty
ZOO_CACHE, so it trains its own tokenizer and encodes the data afresh. Runs of one variant should be identical; the
table says whether runs of the others are.

    python bench/determinism.py --repeats 2 --variants native avx2 -- bilstm --data ../shared/datasets/sst5 \
        --threads 1 --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

VARIANTS = {  # name: (environment, extra `zoo train` arguments; the last --threads wins)
    "native": ({}, []),
    "avx2": ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"}, []),
    "nosimd": ({"ATEN_CPU_CAPABILITY": "default"}, []),
    "threads2": ({}, ["--threads", "2"]),
}


def train(arguments: list[str], variant: str, out: Path) -> dict:
    env, extra = VARIANTS[variant]
    command = [sys.executable, "-m", "zoo.cli", "train", *arguments, *extra, "--out", str(out), "--json",
               "--no-progress"]
    env = os.environ | env | {"ZOO_CACHE": str(out.with_name(out.name + "-cache"))}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"zoo train failed:\n{result.stderr}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    records = map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
    losses = [r["loss"] for r in records if r["type"] == "step"]
    state = torch.load(out / "model.pt", map_location="cpu", weights_only=True)  # a state dict
    return {"tokenizer": hashlib.sha256((out / "tokenizer.model").read_bytes()).hexdigest()[:12],
            "losses": losses, "state": state,
            "test_accuracy": summary.get("test_accuracy"), "epochs": summary["epochs"]}


def compare(first: dict, other: dict) -> str:
    """How `other` differs from `first`: identical, or where the first difference lies."""
    if first["tokenizer"] != other["tokenizer"]:
        return "tokenizer differs"
    steps = [i for i, (a, b) in enumerate(zip(first["losses"], other["losses"])) if a != b]
    if steps or len(first["losses"]) != len(other["losses"]):
        at = steps[0] if steps else min(len(first["losses"]), len(other["losses"]))
        return f"losses differ from log record {at + 1} of {len(first['losses'])}"
    if first["state"].keys() != other["state"].keys():
        return "weights differ (other parameters)"
    largest = max((a - other["state"][k]).abs().max().item() for k, a in first["state"].items())
    return "identical" if largest == 0 else f"weights differ (max |diff| {largest:.2e})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant")
    parser.add_argument("--variants", nargs="+", default=["native", "avx2"], choices=sorted(VARIANTS))
    parser.add_argument("train", nargs=argparse.REMAINDER, help="-- then `zoo train`'s arguments")
    args = parser.parse_args()
    arguments = [a for a in args.train if a != "--"]
    rows, first = [], None
    with tempfile.TemporaryDirectory() as scratch:
        for variant in args.variants:
            own = None  # this variant's first run
            for repeat in range(args.repeats):
                run = train(arguments, variant, Path(scratch) / f"{variant}-{repeat}")
                first, own = first or run, own or run
                rows.append(f"| {variant} | {repeat + 1} | {run['tokenizer']} | {run['epochs']} | "
                            f"{100 * run['test_accuracy']:.2f} | {'-' if run is own else compare(own, run)} | "
                            f"{'(reference)' if run is first else compare(first, run)} |")
                print(rows[-1], flush=True)
    print(f"\n`zoo train {' '.join(arguments)}`, torch {torch.__version__}, "
          f"this CPU: {torch.backends.cpu.get_cpu_capability()}\n")
    print("| variant | run | tokenizer sha256 | epochs | test acc | against the variant's first run "
          "| against the first run |\n| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
