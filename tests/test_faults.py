"""Faults as processes meet them: `kill -9` at every stage of a run and then --resume, concurrent runs and cache
builds, corrupt caches, failed re-exports, a diverging loss. Each case is a real subprocess where the real failure
is a process-level one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import conftest
import numpy as np
import pytest
import torch
from conftest import make_distribution, run_zoo
from imdb_fixtures import write_hub_folder, write_stanford_folder, write_tarball

TINY = conftest.TINY + ["train.epochs=2", "train.checkpoint_every=5", "train.log_every=3", "train.patience=0"]
TIMES = {"train_seconds", "tokens_per_second"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(write_hub_folder(tmp_path_factory.mktemp("data") / "hub", train=240, test=60))


def zoo_train(out: Path, data: str, cache: Path, *settings: str, failpoint: str | None = None,
              resume: bool = False) -> subprocess.CompletedProcess:
    env = {"ZOO_CACHE": str(cache)} | ({"ZOO_FAILPOINT": failpoint} if failpoint else {})
    if resume:
        return run_zoo("train", "--resume", str(out), "--threads", "1", "--json", env=env)
    return run_zoo("train", "bilstm", "--out", str(out), "--data", data, "--threads", "1", "--json",
                   *[f"--set={s}" for s in settings], env=env)


def records(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMES}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def same_weights(a: Path, b: Path) -> bool:
    x, y = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def references(data, tmp_path_factory):
    """Uninterrupted runs: the plain settings, and settings whose patience stops training early."""
    root = tmp_path_factory.mktemp("reference")
    made = {}
    for name, settings in (("plain", TINY), ("early", TINY + ["train.epochs=8", "train.patience=1"])):
        result = zoo_train(root / name, data, root / "cache", *settings)
        assert result.returncode == 0, result.stderr
        made[name] = (root / name, json.loads(result.stdout.splitlines()[-1]), settings)
    assert made["early"][1]["stopped_early"] and made["early"][1]["epochs"] < 8
    return made


@pytest.mark.parametrize("failpoint,reference", [
    ("tokenizer-training", "plain"), ("encoding:2", "plain"), ("checkpoint-write:3", "plain"),
    ("epoch-end:1", "plain"), ("test-evaluation", "plain"), ("epoch-end:2", "early"), ("test-evaluation", "early"),
])
def test_kill_9_at_any_point_then_resume_ends_like_an_uninterrupted_run(data, references, tmp_path, failpoint, reference):
    reference_out, reference_summary, settings = references[reference]
    out, cache = tmp_path / "run", tmp_path / "cache"  # a fresh cache: the tokenizer and the encoding happen here
    killed = zoo_train(out, data, cache, *settings, failpoint=failpoint)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "README.md").exists()
    resumed = zoo_train(out, data, cache, resume=True)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.splitlines()[-1])
    for key in ("best_validation_accuracy", "best_epoch", "test_accuracy", "test_loss", "epochs", "steps", "stopped_early"):
        assert summary[key] == reference_summary[key], key
    assert records(out) == records(reference_out)
    assert same_weights(out / "model.pt", reference_out / "model.pt")
    assert (out / "README.md").is_file() and (out / "curves.png").is_file()
    assert not list(out.glob(".*.tmp"))  # the killed write's temporary file is gone or was never renamed in
    finished = zoo_train(out, data, cache, resume=True)
    assert finished.returncode != 0 and "finished training" in finished.stderr


def test_two_runs_started_together_get_their_own_directories(data, tmp_path):
    env = dict(os.environ, ZOO_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "zoo.cli", "train", "bilstm", "--data", data, "--threads", "1", "--json",
               *[f"--set={s}" for s in TINY + ["train.epochs=1"]]]
    processes = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    dirs = {json.loads(out.splitlines()[-1])["run_dir"] for out, _ in outputs}
    assert len(dirs) == 2
    for run in dirs:
        kinds = [r["type"] for r in records(tmp_path / run)]
        assert kinds.count("test") == 1 and kinds.count("epoch") == 1  # nothing interleaved


def test_same_out_twice_at_once_one_wins_the_other_is_refused(data, tmp_path):
    env = dict(os.environ, ZOO_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "shared-out"
    command = [sys.executable, "-m", "zoo.cli", "train", "bilstm", "--data", data, "--threads", "1", "--out", str(out),
               *[f"--set={s}" for s in TINY + ["train.epochs=1"]]]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    codes = sorted(p.returncode for p in processes)
    assert codes[0] == 0 and codes[1] != 0, outputs
    loser = next(err for p, (_, err) in zip(processes, outputs) if p.returncode != 0)
    assert loser.startswith("Error:") and "Traceback" not in loser
    assert [r["type"] for r in records(out)].count("test") == 1
    assert run_zoo("evaluate", str(out), env={"ZOO_CACHE": str(tmp_path / "cache")}).returncode == 0


def test_resuming_a_run_that_is_still_training_is_refused(data, tmp_path):
    env = dict(os.environ, ZOO_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "busy"
    process = subprocess.Popen([sys.executable, "-m", "zoo.cli", "train", "bilstm", "--data", data, "--threads", "1",
                                "--out", str(out), *[f"--set={s}" for s in TINY + ["train.epochs=30"]]],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (out / "last.pt").exists() and time.time() < deadline:
            time.sleep(0.2)
        second = run_zoo("train", "--resume", str(out), env={"ZOO_CACHE": str(tmp_path / "cache")})
        assert second.returncode != 0 and "another process" in second.stderr and "Traceback" not in second.stderr
    finally:
        process.kill()
        process.wait()
    resumed = run_zoo("train", "--resume", str(out), "--threads", "1", env={"ZOO_CACHE": str(tmp_path / "cache")})
    assert resumed.returncode == 0, resumed.stderr  # the lock died with its process


def test_concurrent_cache_builds_and_corrupt_caches(tmp_path):
    """Three processes build the same caches at once (parsed tarball, tokenizer, encoded splits); then each
    cache file is corrupted and rebuilt."""
    data = str(write_tarball(write_stanford_folder(tmp_path / "src", train=200, test=60), tmp_path / "aclImdb.tar.gz"))
    cache = tmp_path / "cache"
    env = dict(os.environ, ZOO_CACHE=str(cache))
    command = [sys.executable, "-m", "zoo.cli", "data", "--data", data, "--vocab-size", "80", "--json"]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    summaries = [json.loads(out) for out, _ in outputs]
    assert len({s["tokenizer"]["sha256"] for s in summaries}) == 1
    assert len({json.dumps(s["tokens"]) for s in summaries}) == 1
    assert not list(cache.rglob("*.tmp"))
    (tokenizer,) = (cache / "tokenizers").glob("*.model")
    tokenizer.write_bytes(b"\x00 not a sentencepiece model")
    for arrow in (cache / "encoded").glob("*.arrow"):
        arrow.write_bytes(arrow.read_bytes()[:100])
    (parsed,) = (cache / "stanford").glob("*/dataset_dict.json")
    parsed.write_text("{not json")
    again = run_zoo("data", "--data", data, "--vocab-size", "80", "--json", env={"ZOO_CACHE": str(cache)})
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == summaries[0]


@pytest.fixture(scope="module")
def exported(data, references, tmp_path_factory):
    """A copy of the plain reference run with a good model.onnx."""
    import shutil

    from zoo.registry.discovery import exporters

    out = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(references["plain"][0], out)
    exporters().get("onnx").export(out, data=data)
    return out


def test_a_failed_reexport_keeps_the_previous_good_model(exported, data, monkeypatch):
    import onnx
    from onnx import TensorProto, helper

    import zoo.exporters.onnx.export as onnx_export
    from zoo.errors import ExportError

    good = (exported / "model.onnx").read_bytes()
    with pytest.raises(ExportError, match="misses its tolerance"):
        onnx_export.export_onnx(exported, data=data, atol=-1.0)
    assert (exported / "model.onnx").read_bytes() == good and (exported / "model.failed.onnx").is_file()

    def unrunnable(model, lower, opset, metadata, scratch):  # loads in onnxruntime, fails on every real batch
        graph = helper.make_graph(
            [helper.make_node("Cast", ["input_ids"], ["floats"], to=TensorProto.FLOAT),
             helper.make_node("Reshape", ["floats", "shape"], ["fixed"]),
             helper.make_node("ReduceSum", ["fixed", "axis"], ["logits"], keepdims=0)],
            "unrunnable", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
                           helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch"])],
            [helper.make_tensor("shape", TensorProto.INT64, [2], np.array([1, 12])),
             helper.make_tensor("axis", TensorProto.INT64, [1], np.array([1]))])
        exported_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        helper.set_model_props(exported_model, metadata | {"lowering": "native"})
        return exported_model

    monkeypatch.setattr(onnx_export, "classifier_graph", unrunnable)
    with pytest.raises(ExportError, match="onnxruntime fails"):
        onnx_export.export_onnx(exported, data=data)
    assert (exported / "model.onnx").read_bytes() == good
    assert onnx.load(str(exported / "model.failed.onnx")).graph.name == "unrunnable"
    predicted = run_zoo("predict", str(exported / "model.onnx"), "wonderful superb", "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert not list(exported.glob(".*.onnx"))  # no temporary files left


DIVERGING = '''
from dataclasses import dataclass
import torch
from zoo.contract import Architecture

@dataclass
class Hyper:
    blow_up_at: int = 7

class Encoder(torch.nn.Module):
    """A linear encoder whose training forward turns to nan at its N-th call."""
    bidirectional = False
    def __init__(self, input_size, blow_up_at):
        super().__init__()
        self.linear, self.output_size, self.calls, self.blow_up_at = torch.nn.Linear(input_size, 4), 4, 0, blow_up_at
    def forward(self, x, lengths):
        out = torch.tanh(self.linear(x))
        if self.training:
            self.calls += 1
            if self.calls >= self.blow_up_at:
                out = out * float("nan")
        return out * (torch.arange(x.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1)

architecture = Architecture("diverging", "nan at step N", Hyper, lambda hp, n: Encoder(n, hp.blow_up_at))
'''


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(fake_site, data, tmp_path):
    make_distribution(fake_site, "zoo-diverging", "1.0", {"zoo_diverging": DIVERGING},
                      architectures={"diverging": "zoo_diverging:architecture"})
    out = tmp_path / "run"
    result = run_zoo("train", "diverging", "--data", data, "--out", str(out), "--threads", "1",
                     *[f"--set={s}" for s in TINY[:1] + ["train.batch_size=16", "train.checkpoint_every=5"]],
                     site=fake_site, env={"ZOO_CACHE": str(tmp_path / "cache")})
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "step 7" in result.stderr and "nan" in result.stderr and "last.pt" in result.stderr
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["progress"]["global_step"] == 5
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    assert not (out / "model.pt").exists()  # no epoch ended: nothing to keep, and never nan weights
