"""The second round of bad inputs and faults, aimed at the newer paths (any dataset, K classes, pretraining,
torchrun): every command has one defined behaviour under torchrun, a peer's death is one line, and odd data or
settings are clean errors that say what to do. Each case runs the zoo as a real process."""

import json
import os
import shutil
import subprocess
import sys

import conftest
import pytest
from conftest import clean_error, make_distribution, run_zoo
from text_fixtures import topic_rows, write

TINY = conftest.TINY + ["train.epochs=2"]


def torchrun(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node 2 $(command -v zoo) ARGS`."""
    zoo = shutil.which("zoo", path=os.path.dirname(sys.executable)) or shutil.which("zoo")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", zoo,
                           *args], capture_output=True, text=True, input=stdin, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    yield from conftest.tiny_hub_data(tmp_path_factory, train=240, test=60)


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory):
    return conftest.train_tiny(tiny_data, tmp_path_factory.mktemp("runs") / "tiny")


# --- torchrun: one answer per input, whatever the command ------------------------------------------------------


def test_predict_under_torchrun_answers_once_per_text_in_order(run):
    two = torchrun("predict", str(run), "--json", "a fine film", "dull")
    assert two.returncode == 0, two.stderr
    assert two.stdout == run_zoo("predict", str(run), "--json", "a fine film", "dull").stdout
    assert len(two.stdout.splitlines()) == 2 and "runs in one process" in two.stderr
    lines = "".join(f"review {i} {'superb' if i % 3 else 'awful'} {'x' * (i % 50)}\n" for i in range(10_000))
    streamed = torchrun("predict", str(run), "--json", stdin=lines)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == run_zoo("predict", str(run), "--json", stdin=lines).stdout
    assert len(streamed.stdout.splitlines()) == 10_000


@pytest.mark.parametrize("command", [["list", "--json"], ["info", "bilstm", "--json"], ["data", "--json"],
                                     ["evaluate", "RUN", "--json"], ["export", "RUN", "--json"]])
def test_every_other_command_under_torchrun_is_one_process(run, tiny_data, command):
    args = [str(run) if a == "RUN" else a for a in command] + (["--data", tiny_data] if command[0] == "data" else [])
    two = torchrun(*args)
    assert two.returncode == 0, two.stderr
    assert len(two.stdout.splitlines()) == 1  # one answer, not one per process
    if command[0] == "export":
        assert json.loads(two.stdout)["passed"]
    else:
        assert json.loads(two.stdout) == json.loads(run_zoo(*args).stdout)


def test_a_dead_peer_is_one_line_not_a_traceback(tiny_data, tmp_path):
    killed = torchrun("train", "bilstm", "--data", tiny_data, "--out", str(tmp_path / "cut"), "--threads", "1",
                      *[f"--set={s}" for s in TINY + ["train.checkpoint_every=4"]],
                      env={"ZOO_FAILPOINT": "checkpoint-write:3"})  # rank 0 dies at its 3rd checkpoint
    assert killed.returncode != 0
    assert "another process of this torchrun job failed" in killed.stderr, killed.stderr
    assert "[rank1]: Traceback" not in killed.stderr and "[rank1]:" not in killed.stderr, killed.stderr


# --- data: odd labels and texts -------------------------------------------------------------------------------


def test_a_label_column_of_lists_is_named_with_its_type(tmp_path):
    import pandas as pd

    data = tmp_path / "lists.parquet"
    pd.DataFrame({"text": [f"text {i}" for i in range(40)], "label": [[i % 2] for i in range(40)]}).to_parquet(data)
    for command in (["data"], ["train", "bilstm", "--out", str(tmp_path / "run")]):
        clean_error(run_zoo(*command, "--data", str(data), env={"ZOO_CACHE": str(tmp_path / "cache")}),
                    "'label' column", "list<", "--label-column")


def test_an_empty_class_name_is_refused_at_train_time(tmp_path):
    rows = [{"body": r["body"], "topic": "" if r["topic"] == "music" else r["topic"]} for r in topic_rows(90, 1)]
    data = write(tmp_path / "train.jsonl", rows, text="text", label="label")
    clean_error(run_zoo("train", "gru", "--data", str(data), "--out", str(tmp_path / "run"),
                        env={"ZOO_CACHE": str(tmp_path / "cache")}), "empty label", "every class needs a name")


def test_class_names_training_accepts_export_and_predict_alike(tmp_path):
    names = {"cooking": " ", "music": "ü ünï", "sports": "a,b \"quoted\""}
    rows = [{"body": r["body"], "topic": names[r["topic"]]} for r in topic_rows(300, 1)]
    data = write(tmp_path / "train.jsonl", rows, text="text", label="label")
    env, out = {"ZOO_CACHE": str(tmp_path / "cache")}, tmp_path / "run"
    trained = run_zoo("train", "gru", "--data", str(data), "--out", str(out), "--threads", "1",
                      *[f"--set={s}" for s in TINY], env=env)
    assert trained.returncode == 0, trained.stderr
    assert run_zoo("export", str(out), env=env).returncode == 0
    from_run = run_zoo("predict", str(out), "--json", "guitar drums", env=env)
    from_onnx = run_zoo("predict", str(out / "model.onnx"), "--json", "guitar drums", env=env)
    assert from_onnx.returncode == 0, from_onnx.stderr
    assert set(json.loads(from_onnx.stdout)["probabilities"]) == set(names.values())
    assert json.loads(from_onnx.stdout)["label"] == json.loads(from_run.stdout)["label"]


def test_pretraining_on_empty_texts_names_the_data_and_the_cause(tmp_path):
    data = write(tmp_path / "train.csv", [{"body": " ", "topic": "ab"[i % 2]} for i in range(50)], text="text",
                 label="label")
    result = run_zoo("pretrain", "bilstm", "--data", str(data), "--out", str(tmp_path / "lm"),
                     env={"ZOO_CACHE": str(tmp_path / "cache")})
    clean_error(result, str(data), "all empty", "nothing to learn a tokenizer from")
    assert "vocab_size" not in result.stderr


def test_too_little_text_says_so_instead_of_an_impossible_vocabulary(tmp_path):
    data = write(tmp_path / "train.csv", [{"body": "ab ba" if i % 2 else "ba ab", "topic": "xy"[i % 2]}
                                          for i in range(20)], text="text", label="label")
    result = run_zoo("data", "--data", str(data), env={"ZOO_CACHE": str(tmp_path / "cache")})
    clean_error(result, "too little text", "minimum vocabulary of 64", "times as much")
    assert "value <=" not in result.stderr


def test_a_bad_json_line_is_named_by_number(tmp_path):
    good = [json.dumps({"text": f"text {i}", "label": i % 2}) for i in range(30)]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(good[:11] + ['{"text": "broken", "label": '] + good[11:]) + "\n")
    clean_error(run_zoo("data", "--data", str(data), env={"ZOO_CACHE": str(tmp_path / "cache")}),
                f"{data} line 12 is not valid JSON")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(good) + "\n")
    (folder / "test.jsonl").write_text("\n".join(good[:5] + ["[1, 2]"]) + "\n")
    clean_error(run_zoo("data", "--data", str(folder), env={"ZOO_CACHE": str(tmp_path / "cache")}),
                "test.jsonl line 6")


def test_a_numeric_text_column_named_explicitly_is_read_as_text(tmp_path):
    data = write(tmp_path / "train.csv", [{"body": str(1000 + i * (7 if i % 2 else 3)), "topic": "ab"[i % 2]}
                                          for i in range(200)], text="code", label="label")
    env = {"ZOO_CACHE": str(tmp_path / "cache")}
    named = run_zoo("data", "--data", str(data), "--text-column", "code", "--json", env=env)
    assert named.returncode == 0, named.stderr
    assert "reading its values as text" in named.stderr and json.loads(named.stdout)["splits"]["train"]["rows"] == 180


def test_split_paths_may_hold_commas(tmp_path):
    train = write(tmp_path / "reviews, 2024" / "train,v2.csv", topic_rows(90, 1), text="text", label="label")
    test = write(tmp_path / "test.csv", topic_rows(30, 2), text="text", label="label")
    result = run_zoo("data", "--data", f"train={train},test={test}", "--json", env={"ZOO_CACHE": str(tmp_path / "c")})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["splits"]["test"]["rows"] == 30


# --- runs and settings ----------------------------------------------------------------------------------------


def test_huge_sizes_are_refused_before_anything_is_allocated():
    clean_error(run_zoo("info", "classic", "--set", "tokenizer.vocab_size=1000000000"), "vocab_size must be <=")
    result = run_zoo("info", "classic", "--set", "hidden_size=200000")
    clean_error(result, "parameters", "encoder.hidden_size = 200000", "Choose smaller sizes")


def test_evaluate_prints_its_figures_when_the_run_cannot_be_written(run, tiny_data, tmp_path):
    """A run directory on a read-only mount (root writes through permissions, so root gets a read-only bind mount
    in a mount namespace of the command's own; anyone else a folder without write permission)."""
    frozen = tmp_path / "frozen"
    shutil.copytree(run, frozen)
    (frozen / "confusion.png").unlink(missing_ok=True)
    command = [sys.executable, "-m", "zoo.cli", "evaluate", str(frozen), "--data", tiny_data]
    if os.geteuid() == 0:
        mount = f"mount --bind {frozen} {frozen} && mount -o remount,bind,ro {frozen} && exec \"$@\""
        command = ["unshare", "--mount", "sh", "-c", mount, "sh", *command]
    else:
        frozen.chmod(0o555)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "confusion (rows true" in result.stdout
    assert "could not be saved" in result.stderr and "Traceback" not in result.stderr
    assert not (frozen / "confusion.png").exists()


def test_export_threads_limit_pytorch_too_and_are_documented(run):
    for command in ("export", "predict", "evaluate"):
        assert "CPU threads" in run_zoo(command, "--help").stdout
    probe = ("import torch, zoo.exporters.onnx.export as e, sys; e.export_onnx(sys.argv[1], sys.argv[2], threads=1); "
             "print(torch.get_num_threads())")
    result = subprocess.run([sys.executable, "-c", probe, str(run), str(run / "threads.onnx")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "1"


BROKEN_ON_FIRST_BATCH = """
from dataclasses import dataclass
from zoo.contract import Architecture

@dataclass
class HP:
    hidden_size: int = 8

def build(hp, input_size):
    import torch

    class Wrong(torch.nn.Module):
        output_size = 8
        def forward(self, x, lengths):
            return x[:, :1]  # breaks the contract: one step only
    return Wrong()

architecture = Architecture(name="wrong", summary="breaks on its first batch", hyperparameters=HP, build=build)
"""


def test_a_run_that_never_trained_does_not_block_the_next(tiny_data, tmp_path):
    site = tmp_path / "site"
    make_distribution(site, "zoo-wrong", "0.1", {"zoo_wrong": BROKEN_ON_FIRST_BATCH}, architectures={"wrong": "zoo_wrong:architecture"})
    out = tmp_path / "run"
    clean_error(run_zoo("train", "wrong", "--data", tiny_data, "--out", str(out), *[f"--set={s}" for s in TINY],
                        site=site), "breaks the plugin contract")
    assert (out / "config.json").is_file()  # what it left behind
    again = run_zoo("train", "bilstm", "--data", tiny_data, "--out", str(out), "--threads", "1",
                    *[f"--set={s}" for s in TINY])
    assert again.returncode == 0, again.stderr
    assert "stopped before its first training step" in again.stderr
    assert json.loads((out / "config.json").read_text())["config"]["architecture"] == "bilstm"
    trained = run_zoo("train", "gru", "--data", tiny_data, "--out", str(out), *[f"--set={s}" for s in TINY])
    clean_error(trained, "not empty")  # a run that trained is never taken over
