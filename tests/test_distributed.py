"""Data-parallel training under torchrun: two CPU processes (gloo) against one process, same global batch."""

import json
import os
import shutil
import subprocess
import sys

import conftest
import numpy as np
import pytest
import torch
from conftest import run_zoo

# No dropout: each process draws its own dropout masks, which one process would draw differently.
EXACT = conftest.TINY + ["embedding_dropout=0", "word_dropout=0", "head_dropout=0", "train.epochs=2",
                         "train.checkpoint_every=4", "train.log_every=2"]
TOLERANCE = 1e-4  # weights after 2 epochs; the ranks' gradient sums run in another order than one process's


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    yield from conftest.tiny_hub_data(tmp_path_factory, train=240, test=120, unsup=200)


def torchrun(*args: str, processes: int = 2, env: dict | None = None) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node N $(command -v zoo) ARGS`, each process on one thread."""
    zoo = shutil.which("zoo", path=os.path.dirname(sys.executable)) or shutil.which("zoo")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc-per-node={processes}", zoo, *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=600)


# Logits of 300 random texts (3 evaluation batches) from a seeded 3-class model, in one process or in each of N.
SHARDED_LOGITS = f"""
import sys
import numpy as np, torch
from zoo.training.world import join_world, leave_world
from zoo.data.encoding import EncodedSplit
from zoo.inference.logits import split_logits
from zoo.models.build import build_classifier
from zoo.registry.resolve import resolve

world = join_world("cpu")
rng = np.random.default_rng(0)
texts = [rng.integers(1, 80, rng.integers(1, 60)).tolist() for _ in range(300)]
torch.manual_seed(0)
model = build_classifier(resolve("bilstm", {conftest.TINY!r}), 80, 3)
np.save(f"{{sys.argv[1]}}/rank{{world.rank}}.npy", split_logits(model, EncodedSplit.from_lists("v", texts, [0] * 300),
                                                               workers=world))
leave_world(world)
"""


def records(run, kind):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["type"] == kind]


def assert_weights_close(a, b):
    first, second = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert first.keys() == second.keys()
    worst = max(float((first[k].float() - second[k].float()).abs().max()) for k in first)
    assert worst < TOLERANCE, worst


@pytest.mark.parametrize("extra", [[], ["train.adversarial=0.05"]], ids=["plain", "adversarial"])
def test_two_processes_train_like_one(tiny_data, tmp_path, extra):
    sets = [f"--set={s}" for s in EXACT + extra]
    one = run_zoo("train", "bilstm", "--data", tiny_data, "--out", str(tmp_path / "one"), "--threads", "1", *sets)
    assert one.returncode == 0, one.stderr
    two = torchrun("train", "bilstm", "--data", tiny_data, "--out", str(tmp_path / "two"), "--threads", "1", *sets,
                   "--json")
    assert two.returncode == 0, two.stderr
    summary = json.loads(two.stdout.strip().splitlines()[-1])  # rank 0 alone prints
    assert len([line for line in two.stdout.splitlines() if line.startswith("{")]) == 1
    assert json.loads((tmp_path / "two" / "config.json").read_text())["processes"] == 2
    assert_weights_close(tmp_path / "one" / "model.pt", tmp_path / "two" / "model.pt")
    for kind in ("step", "epoch"):
        mine, theirs = records(tmp_path / "one", kind), records(tmp_path / "two", kind)
        assert [r["step"] for r in mine] == [r["step"] for r in theirs]
        for a, b in zip(mine, theirs):
            loss = "loss" if kind == "step" else "train_loss"
            assert a[loss] == pytest.approx(b[loss], abs=1e-4)
    for a, b in zip(records(tmp_path / "one", "epoch"), records(tmp_path / "two", "epoch")):  # the same validation
        assert a["validation_loss"] == pytest.approx(b["validation_loss"], abs=1e-4)
        assert a["validation_accuracy"] == pytest.approx(b["validation_accuracy"], abs=1 / 24 + 1e-9)  # 24 reviews
    test_one, test_two = records(tmp_path / "one", "test")[0], records(tmp_path / "two", "test")[0]  # sharded
    assert summary["test_accuracy"] == test_two["accuracy"] == pytest.approx(test_one["accuracy"], abs=1 / 120 + 1e-9)
    assert test_two["loss"] == pytest.approx(test_one["loss"], abs=1e-4)


def test_each_process_evaluates_its_share_and_gets_every_logit(tmp_path):
    script = tmp_path / "logits.py"
    script.write_text(SHARDED_LOGITS)
    for out in ("one", "two"):
        (tmp_path / out).mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for command in ([sys.executable, str(script), str(tmp_path / "one")],
                    [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
                     str(tmp_path / "two")]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
    whole = np.load(tmp_path / "one" / "rank0.npy")
    assert whole.shape == (300, 3) and np.abs(whole).min() > 0
    for rank in (0, 1):
        assert np.array_equal(np.load(tmp_path / "two" / f"rank{rank}.npy"), whole)


def test_two_processes_resume_after_a_kill(tiny_data, tmp_path):
    sets = [f"--set={s}" for s in EXACT]
    whole = torchrun("train", "bilstm", "--data", tiny_data, "--out", str(tmp_path / "whole"), "--threads", "1", *sets)
    assert whole.returncode == 0, whole.stderr
    killed = torchrun("train", "bilstm", "--data", tiny_data, "--out", str(tmp_path / "cut"), "--threads", "1", *sets,
                      env={"ZOO_FAILPOINT": "checkpoint-write:3"})
    assert killed.returncode != 0 and records(tmp_path / "cut", "test") == []  # rank 0 died at its 3rd checkpoint
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["progress"]["global_step"] == 8
    one_process = run_zoo("train", "--resume", str(tmp_path / "cut"), "--threads", "1")
    assert one_process.returncode != 0 and "same number" in one_process.stderr
    resumed = torchrun("train", "--resume", str(tmp_path / "cut"), "--threads", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert records(tmp_path / "cut", "epoch") == [
        {**r, "train_seconds": c["train_seconds"]} for r, c in zip(records(tmp_path / "whole", "epoch"),
                                                                   records(tmp_path / "cut", "epoch"))]
    assert_weights_close(tmp_path / "whole" / "model.pt", tmp_path / "cut" / "model.pt")


def test_two_processes_pretrain_like_one(tiny_data, tmp_path):
    sets = [f"--set={s}" for s in EXACT + ["pretrain.samples=30", "pretrain.chunk_tokens=40", "pretrain.output_dropout=0"]]
    one = run_zoo("pretrain", "bilstm", "--data", tiny_data, "--out", str(tmp_path / "one"), "--threads", "1", *sets)
    assert one.returncode == 0, one.stderr
    two = torchrun("pretrain", "bilstm", "--data", tiny_data, "--out", str(tmp_path / "two"), "--threads", "1", *sets)
    assert two.returncode == 0, two.stderr
    assert_weights_close(tmp_path / "one" / "lm.pt", tmp_path / "two" / "lm.pt")
    for a, b in zip(records(tmp_path / "one", "epoch"), records(tmp_path / "two", "epoch")):
        assert a["validation_loss"] == pytest.approx(b["validation_loss"], abs=1e-4)
