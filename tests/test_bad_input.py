"""Bad input from users: messy stdin, mismatched run files and data, bad options and settings, broken data
folders, misbehaving plugins and untrusted .onnx files. Each is a clean `Error:` (or the right answer), never a
traceback, a hang or a wrong answer."""

import json
import math
import os
import shutil
import subprocess
import sys

import conftest
import numpy as np
import onnx
import pytest
import torch
from conftest import clean_error, make_distribution, run_zoo
from imdb_fixtures import write_hub_folder, write_stanford_folder

from zoo.registry.resolve import resolve
from zoo.training.classify import train
from zoo.training.job import RunRequest

TINY = conftest.TINY + ["train.epochs=2", "train.patience=0"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    yield from conftest.tiny_hub_data(tmp_path_factory, train=300, test=60)


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(RunRequest(resolve("bilstm", TINY), data=tiny_data, out=out, threads=1))
    from zoo.registry.discovery import exporters

    exporters().get("onnx").export(out)
    exporters().get("onnx").export(out, with_tokenizer=True)
    return out


# --- stdin: one prediction per \n-separated line, in order ----------------------------------------------------

ODD_LINES = [
    "wonderful superb\u0085awful dull terrible",  # NEL: about 7% of IMDB test reviews have one
    "brilliant\u2028boring\u2029moving",  # line and paragraph separators
    "fun\x0cdull\x0bcharming",  # form feed and vertical tab
    "tedious\rdelightful",  # a lone carriage return inside a line
    "masterful\x00wooden",  # NUL
    "",
    "awful boring dull",
]


def test_stdin_gives_one_prediction_per_line_in_order(run):
    payload = "\n".join(ODD_LINES[:3]) + "\r\n" + "\n".join(ODD_LINES[3:]) + "\n"  # one CRLF line too
    payload_bytes = payload.encode() + b"bad \xff\xfe bytes\n"
    rows = {}
    for model in (run, run / "model.onnx", run / "model-text.onnx"):
        result = subprocess.run([sys.executable, "-m", "zoo.cli", "predict", str(model), "--json"],
                                input=payload_bytes, capture_output=True, timeout=300)
        assert result.returncode == 0, result.stderr
        rows[model.name] = [json.loads(line) for line in result.stdout.decode().splitlines()]
        assert len(rows[model.name]) == len(ODD_LINES) + 1
    texts = ODD_LINES + ["bad \ufffd\ufffd bytes"]
    argv = [t.replace("\x00", " ") for t in texts]  # argv cannot carry NUL; NUL reads as a space
    alone = [json.loads(run_zoo("predict", str(run), "--json", "--", text).stdout) for text in argv]
    assert alone == rows[run.name]  # each line's answer is its own text's, in order
    for exported in ("model.onnx", "model-text.onnx"):  # onnxruntime, ids in and raw text in, agree with PyTorch
        assert [r["label"] for r in rows[exported]] == [r["label"] for r in alone]
        assert np.allclose([r["probability"] for r in rows[exported]], [r["probability"] for r in alone], atol=1e-5)


def test_stdin_is_streamed(run):
    """Predictions come out while stdin is still open, so any number of lines runs in bounded memory."""
    import queue
    import threading

    process = subprocess.Popen([sys.executable, "-m", "zoo.cli", "predict", str(run / "model.onnx")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        process.stdin.write(b"wonderful superb\n" * 300)  # more than one chunk of 256
        process.stdin.flush()
        first = lines.get(timeout=120)  # stdin is still open: an answer now means predict did not wait for its end
        assert first.endswith(b"\twonderful superb\n")
        process.stdin.write(b"awful dull\n" * 44)
        process.stdin.close()
        assert process.wait(timeout=120) == 0
        rest = [lines.get(timeout=10) for _ in range(343)]
        assert rest[-1].endswith(b"\tawful dull\n") and lines.empty()
    finally:
        process.kill()


# --- run files that do not belong together ---------------------------------------------------------------------


def test_a_replaced_tokenizer_is_refused(run, tmp_path, tiny_data):
    other = tmp_path / "other"
    train(RunRequest(resolve("gru", TINY + ["tokenizer.vocab_size=90"]), data=tiny_data, out=other, threads=1))
    mixed = tmp_path / "mixed"
    shutil.copytree(run, mixed)
    shutil.copyfile(other / "tokenizer.model", mixed / "tokenizer.model")
    for args in (["predict", str(mixed), "fine"], ["evaluate", str(mixed)], ["export", str(mixed)]):
        clean_error(run_zoo(*args), "not the tokenizer this run was trained with")


def test_export_never_overwrites_another_runs_files(run, tmp_path, tiny_data):
    other = tmp_path / "other"
    train(RunRequest(resolve("gru", TINY + ["tokenizer.vocab_size=90"]), data=tiny_data, out=other, threads=1))
    before = {p.name: p.read_bytes() for p in other.iterdir() if p.is_file()}
    clean_error(run_zoo("export", str(run), "-o", str(other / "x.onnx")), "another run's directory")
    foreign = tmp_path / "serving"
    foreign.mkdir()
    shutil.copyfile(other / "tokenizer.model", foreign / "tokenizer.model")
    clean_error(run_zoo("export", str(run), "-o", str(foreign / "x.onnx")), "belongs to another model")
    assert {p.name: p.read_bytes() for p in other.iterdir() if p.is_file()} == before
    assert not (foreign / "x.onnx").exists()
    evaluated = run_zoo("evaluate", str(other), "--json")
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout)["accuracy"] > 0.8


def test_evaluating_or_resuming_with_other_data_needs_consent(run, tmp_path):
    relabelled = write_hub_folder(tmp_path / "relabelled", train=300, test=60, labels_override={"test": 1})
    clean_error(run_zoo("evaluate", str(run), "--data", str(relabelled)), "not the data", "--allow-other-data")
    allowed = run_zoo("evaluate", str(run), "--data", str(relabelled), "--allow-other-data", "--json")
    assert allowed.returncode == 0 and json.loads(allowed.stdout)["count"] == 60
    moved = tmp_path / "copy"
    shutil.copytree(json.loads((run / "config.json").read_text())["data"]["source"], moved)
    same = run_zoo("evaluate", str(run), "--data", str(moved), "--json")  # the same data elsewhere is the same data
    assert same.returncode == 0, same.stderr
    cut = tmp_path / "cut"

    def stop(step):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        config = resolve("bilstm", TINY + ["train.checkpoint_every=3"])
        train(RunRequest(config, data=str(moved), out=cut, threads=1), step_callback=stop)
    clean_error(run_zoo("train", "--resume", str(cut), "--data", str(relabelled)), "not the data")


# --- options and settings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("args,phrase", [
    (["--lr", "nan"], "finite"), (["--lr", "inf"], "finite"), (["--set", "train.grad_clip=nan"], "finite"),
    (["--set", "train.lr=-inf"], "finite"), (["--seed", "-1"], "--seed"), (["--set", "train.seed=-5"], "seed"),
    (["--set", "encoder.hidden_size=1.5"], "int"), (["--set", "classifier.pooling=sum"], "pooling"),
])
def test_bad_options_fail_at_parse_time(args, phrase, tmp_path):
    result = run_zoo("train", "bilstm", *args, "--data", str(tmp_path / "no-such-data"))
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert phrase in result.stderr and "does not exist" not in result.stderr, result.stderr  # before any data


def test_out_that_exists_is_refused_before_any_work(tmp_path):
    existing = tmp_path / "a-file"
    existing.write_text("mine")
    clean_error(run_zoo("train", "bilstm", "--out", str(existing), "--data", str(tmp_path / "none")), "existing file")
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    clean_error(run_zoo("train", "bilstm", "--out", str(full), "--data", str(tmp_path / "none")), "not empty")
    assert existing.read_text() == "mine" and [p.name for p in full.iterdir()] == ["notes.txt"]


def test_json_output_never_holds_nan(monkeypatch, capsys):
    from zoo.cli.options import print_json

    print_json({"loss": math.nan, "rows": [math.inf, 1.5]})
    assert json.loads(capsys.readouterr().out) == {"loss": None, "rows": [None, 1.5]}


RICH_PLUGIN = '''
from dataclasses import dataclass, field
from typing import Literal
from zoo.contract import Architecture

@dataclass
class Hyper:
    hidden_size: int = 8
    width: int | None = None
    cell: Literal["tanh", "relu"] = "tanh"
    sizes: list[int] = field(default_factory=lambda: [4, 4])
    pair: tuple[int, float] = (1, 0.5)

def build(hp, input_size):
    from zoo.plugins.classic import build as classic
    from zoo.plugins.hyperparameters import RecurrentHyperparameters
    print("building!")  # a chatty plugin
    return classic(RecurrentHyperparameters(hidden_size=hp.hidden_size), input_size)

print("imported!")
architecture = Architecture(name="rich", summary="rich annotations", hyperparameters=Hyper, build=build)
'''


def test_plugin_annotations_work_with_set_and_prints_go_to_stderr(fake_site):
    make_distribution(fake_site, "zoo-rich", "1.0", {"zoo_rich": RICH_PLUGIN}, architectures={"rich": "zoo_rich:architecture"})
    sets = ["width=12", "cell=relu", "sizes=3,5,7", "pair=[2, 0.25]"]
    result = run_zoo("info", "rich", *[f"--set={s}" for s in sets], "--json", site=fake_site)
    assert result.returncode == 0, result.stderr
    encoder = json.loads(result.stdout)["encoder"]  # stdout is pure JSON: the plugin's prints went to stderr
    assert encoder == {"hidden_size": 8, "width": 12, "cell": "relu", "sizes": [3, 5, 7], "pair": [2, 0.25]}
    assert "imported!" in result.stderr and "building!" in result.stderr
    assert json.loads(run_zoo("info", "rich", "--set=width=none", "--json", site=fake_site).stdout)["encoder"]["width"] is None
    for bad, phrase in (("cell=sigmoid", "one of"), ("sizes=a,b", "int"), ("pair=1", "2 values"), ("width=x", "int | None")):
        clean_error(run_zoo("info", "rich", f"--set={bad}", site=fake_site), phrase)


BAD_ENCODERS = '''
from dataclasses import dataclass
import torch
from zoo.contract import Architecture

@dataclass
class Hyper:
    size: int = 4

class Encoder(torch.nn.Module):
    bidirectional = False
    def __init__(self, input_size, kind):
        super().__init__()
        self.linear, self.kind, self.output_size = torch.nn.Linear(input_size, 4), kind, 4
    def forward(self, x, lengths):
        out = self.linear(x)
        if self.kind == "shape":
            return out[:, :1]
        return out * float("nan") if self.kind == "nan" else out

shape = Architecture("wrongshape", "returns one step", Hyper, lambda hp, n: Encoder(n, "shape"))
nan = Architecture("nanout", "returns nan", Hyper, lambda hp, n: Encoder(n, "nan"))
'''

BAD_EXPORTERS = '''
from zoo.contract import Exporter
def boom(run_dir, output=None, **options):
    raise KeyError("no such weight")
def nodict(run_dir, output=None, **options):
    return ["not", "a", "dict"]
raising = Exporter(name="raising", summary="raises", export=boom)
listing = Exporter(name="listing", summary="returns a list", export=nodict)
'''


def test_misbehaving_plugins_are_named(fake_site, run, tiny_data):
    make_distribution(fake_site, "zoo-bad-encoders", "2.0", {"zoo_bad_encoders": BAD_ENCODERS},
                      architectures={"wrongshape": "zoo_bad_encoders:shape", "nanout": "zoo_bad_encoders:nan"},
                      exporters={"raising": "zoo_bad_exporters:raising", "listing": "zoo_bad_exporters:listing"})
    (fake_site / "zoo_bad_exporters.py").write_text(BAD_EXPORTERS)
    for name, phrase in (("wrongshape", "returned [64, 1, 4]"), ("nanout", "non-finite")):
        result = run_zoo("train", name, "--data", tiny_data, "--out", str(fake_site.parent / name),
                         *[f"--set={s}" for s in TINY[:1]], site=fake_site)
        clean_error(result, phrase, "zoo-bad-encoders 2.0")
    for name, phrase in (("raising", "KeyError"), ("listing", "not a report dict")):
        clean_error(run_zoo("export", str(run), "--format", name, site=fake_site), phrase, "zoo-bad-encoders 2.0")


# --- run directories with missing, truncated or foreign files ----------------------------------------------------


@pytest.mark.parametrize("damage", ["config-types", "config-sections", "config-list", "model-foreign", "model-truncated",
                                    "tokenizer-missing", "metrics-garbage"])
def test_damaged_run_directories_are_clean_errors(run, tmp_path, damage):
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    info = json.loads((broken / "config.json").read_text())
    if damage == "config-types":
        info["config"]["train"] = {"lr": "fast"}
    elif damage == "config-sections":
        del info["config"]["encoder"]
    elif damage == "config-list":
        info = ["not", "a", "config"]
    elif damage == "model-foreign":
        torch.save([torch.zeros(3)], broken / "model.pt")
    elif damage == "model-truncated":
        data = (broken / "model.pt").read_bytes()
        (broken / "model.pt").write_bytes(data[: len(data) // 2])
    elif damage == "tokenizer-missing":
        (broken / "tokenizer.model").unlink()
    (broken / "config.json").write_text(json.dumps(info))
    if damage == "metrics-garbage":
        state = torch.load(broken / "last.pt", weights_only=True)
        state["progress"]["finished"] = False
        torch.save(state, broken / "last.pt")
        (broken / "metrics.jsonl").write_text('{"type": "step"}\nnot json\n{"type": "epoch"}\n')
        clean_error(run_zoo("train", "--resume", str(broken)), "metrics.jsonl line 2")
        (broken / "metrics.jsonl").write_text('{"type": "step"}\n')
        clean_error(run_zoo("train", "--resume", str(broken)), "truncated")
        return
    for args in (["predict", str(broken), "fine"], ["evaluate", str(broken)], ["export", str(broken)]):
        clean_error(run_zoo(*args))


@pytest.mark.parametrize("damage", ["truncated", "foreign", "missing-progress"])
def test_damaged_last_checkpoint_is_a_clean_error_on_resume(run, tmp_path, damage):
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    state = torch.load(broken / "last.pt", weights_only=True)
    state["progress"]["finished"] = False
    if damage == "truncated":
        torch.save(state, broken / "last.pt")
        data = (broken / "last.pt").read_bytes()
        (broken / "last.pt").write_bytes(data[: len(data) // 3])
    elif damage == "foreign":
        torch.save({"progress": state["progress"], "model": {"nope": torch.zeros(2)}, "optimizer": {}, "rng": {}},
                   broken / "last.pt")
    else:
        del state["progress"]
        torch.save(state, broken / "last.pt")
    clean_error(run_zoo("train", "--resume", str(broken), "--threads", "1"), "last.pt")


# --- data ----------------------------------------------------------------------------------------------------------


def test_special_files_in_an_aclimdb_folder_are_errors_not_hangs(tmp_path):
    folder = write_stanford_folder(tmp_path / "fifo", train=20, test=10)
    os.mkfifo(folder / "train" / "pos" / "9999_9.txt")
    clean_error(run_zoo("data", "--data", str(folder), env={"ZOO_CACHE": str(tmp_path / "c1")}), "9999_9.txt", "FIFO")
    linked = write_stanford_folder(tmp_path / "link", train=20, test=10)
    os.mkfifo(tmp_path / "pipe")
    (linked / "test" / "neg" / "9998_2.txt").symlink_to(tmp_path / "pipe")
    clean_error(run_zoo("data", "--data", str(linked), env={"ZOO_CACHE": str(tmp_path / "c2")}), "9998_2.txt")
    huge = write_stanford_folder(tmp_path / "huge", train=20, test=10)
    with open(huge / "train" / "neg" / "9997_1.txt", "wb") as handle:
        handle.truncate(20 << 20)  # sparse: 20 MB without writing them
    clean_error(run_zoo("data", "--data", str(huge), env={"ZOO_CACHE": str(tmp_path / "c3")}), "9997_1.txt", "bytes")
    rating = write_stanford_folder(tmp_path / "rating", train=20, test=10)
    (rating / "train" / "pos" / "9996_11.txt").write_text("great")
    clean_error(run_zoo("data", "--data", str(rating), env={"ZOO_CACHE": str(tmp_path / "c4")}), "9996_11.txt", "rating 11")


def test_null_texts_and_empty_splits_name_the_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = write_hub_folder(tmp_path / "nulls", train=40, test=20)
    test_file = folder / "plain_text" / "test-00000-of-00001.parquet"
    table = pq.read_table(test_file)
    texts = table.column("text").to_pylist()
    texts[3] = None
    pq.write_table(table.set_column(0, "text", pa.array(texts, pa.string())), test_file)
    clean_error(run_zoo("data", "--data", str(folder), env={"ZOO_CACHE": str(tmp_path / "c")}), str(test_file), "null")
    pq.write_table(table.slice(0, 0), test_file)
    clean_error(run_zoo("data", "--data", str(folder), env={"ZOO_CACHE": str(tmp_path / "c")}), "empty")


# --- untrusted .onnx files -------------------------------------------------------------------------------------


def test_onnx_external_data_outside_the_models_folder_is_refused(run, tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load(str(run / "model.onnx"))
    outside = tmp_path / "outside"
    outside.mkdir()
    served = tmp_path / "served"
    served.mkdir()
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=1024)
    onnx.save(model, str(outside / "model.onnx"))  # writes outside/weights.bin
    for tensor in model.graph.initializer:  # then point the model in served/ at it (onnx.save refuses "..")
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../outside/weights.bin"
    (served / "model.onnx").write_bytes(model.SerializeToString())
    shutil.copyfile(run / "tokenizer.model", served / "tokenizer.model")
    clean_error(run_zoo("predict", str(served / "model.onnx"), "fine"), "outside its own folder")
    inside = onnx.load(str(run / "model.onnx"))
    convert_model_to_external_data(inside, all_tensors_to_one_file=True, location="weights.bin", size_threshold=1024)
    onnx.save(inside, str(served / "model.onnx"))
    ok = run_zoo("predict", str(served / "model.onnx"), "wonderful superb")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("key,value,phrase", [
    ("labels", "not json", "labels"), ("labels", '["only one"]', "labels"), ("max_tokens", "-3", "max_tokens"),
    ("tokenizer_file", "../../etc/passwd", "tokenizer_file"), ("tokenizer_file", "/etc/passwd", "tokenizer_file"),
])
def test_bad_onnx_metadata_is_a_clean_error(run, tmp_path, key, value, phrase):
    model = onnx.load(str(run / "model.onnx"))
    props = {p.key: p.value for p in model.metadata_props} | {key: value}
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(tmp_path / "model.onnx"))
    shutil.copyfile(run / "tokenizer.model", tmp_path / "tokenizer.model")
    clean_error(run_zoo("predict", str(tmp_path / "model.onnx"), "fine"), phrase)


def test_an_onnxruntime_failure_at_predict_time_is_a_clean_error(run, tmp_path):
    """A graph that loads but cannot run on the input (it reshapes to a fixed [7, 3])."""
    from onnx import TensorProto, helper

    props = {p.key: p.value for p in onnx.load(str(run / "model.onnx")).metadata_props}
    graph = helper.make_graph(
        [helper.make_node("Cast", ["input_ids"], ["floats"], to=TensorProto.FLOAT),
         helper.make_node("Reshape", ["floats", "shape"], ["pairs"]),
         helper.make_node("ReduceSum", ["pairs"], ["logits"], keepdims=0)],
        "fixed", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
                  helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
        [helper.make_tensor("shape", TensorProto.INT64, [2], np.array([7, 3]))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, props)
    onnx.save(model, str(tmp_path / "model.onnx"))
    shutil.copyfile(run / "tokenizer.model", tmp_path / "tokenizer.model")
    clean_error(run_zoo("predict", str(tmp_path / "model.onnx"), "one lonely review"), "onnxruntime cannot run")


def test_dependency_floor_keeps_weights_only_loading_safe():
    text = (conftest.ROOT / "pyproject.toml").read_text()
    assert '"torch>=2.6"' in text and "CVE-2025-32434" in text
