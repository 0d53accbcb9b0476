"""ONNX export of each built-in: native lowering, parity with PyTorch, exactness, the runtime without torch."""

import json
import subprocess
import sys

import conftest
import numpy as np
import onnx
import pytest
import torch
from conftest import run_zoo

from zoo.errors import CheckpointError, ExportError
from zoo.registry.discovery import exporters
from zoo.registry.resolve import resolve
from zoo.training.classify import train
from zoo.training.job import RunRequest

TINY = conftest.TINY + ["train.epochs=1", "train.patience=0"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    yield from conftest.tiny_hub_data(tmp_path_factory, train=2600, test=60)  # 256 validation reviews


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    made = {}
    for arch, extra in (("classic", []), ("peephole", []), ("gru", ["num_layers=2"]), ("bilstm", ["num_layers=2"])):
        made[arch] = base / arch
        train(RunRequest(resolve(arch, TINY + extra), data=tiny_data, out=made[arch], threads=1))
    made["bilstm-last"] = base / "bilstm-last"
    train(RunRequest(resolve("bilstm-seed", TINY), data=tiny_data, out=made["bilstm-last"], threads=1))
    return made


def export(run, **options):
    return exporters().get("onnx").export(run, **options)


@pytest.mark.parametrize("arch", ["classic", "peephole", "gru", "bilstm", "bilstm-last"])
def test_export_validates_against_pytorch(runs, arch):
    report = export(runs[arch])
    assert report["passed"] and report["max_abs_diff"] <= 1e-4 and report["reviews"] == 256 and report["checked"] > 500
    assert report["lowering"] == "native"
    model = onnx.load(report["path"])
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert set(meta) >= {"architecture", "recipe", "labels", "tokenizer_sha256", "normalization", "zoo_version", "opset"}
    ops = {n.op_type for n in model.graph.node}
    assert ops & {"LSTM", "GRU"}, ops
    if arch == "gru":
        gru = next(n for n in model.graph.node if n.op_type == "GRU")
        assert any(a.name == "linear_before_reset" and a.i == 1 for a in gru.attribute)
    if arch == "peephole":
        lstm = next(n for n in model.graph.node if n.op_type == "LSTM")
        assert len(lstm.input) == 8 and lstm.input[7]  # P is given


@pytest.mark.parametrize("arch", ["classic", "peephole", "gru", "bilstm"])
def test_onnx_matches_torch_on_unseen_lengths_and_is_padding_exact(runs, arch):
    from zoo.data.batching import pad_rows
    from zoo.inference.runtime import OnnxClassifier
    from zoo.runs.loaders import load_classifier

    path = export(runs[arch])["path"]
    runtime = OnnxClassifier(path)
    model = load_classifier(runs[arch])
    rng = np.random.default_rng(0)
    rows = [rng.integers(1, 80, size=n) for n in (1, 5, 900, 2000)]  # far longer than any review seen
    alone = np.array([runtime.logits_from_ids([r])[0] for r in rows])
    batched = runtime.logits_from_ids(rows)
    ids, lengths = pad_rows(rows)
    padded = runtime.session.run(["logits"], {"input_ids": ids, "lengths": lengths})[0]
    with torch.no_grad():
        reference = model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    assert np.abs(alone - reference).max() <= 1e-4
    assert np.abs(padded - alone).max() <= 1e-5 and np.abs(batched - alone).max() <= 1e-5


def test_runtime_and_cli_predict_without_torch(runs, tmp_path):
    run = runs["bilstm"]
    result = run_zoo("export", str(run), "--format", "onnx", "-o", str(tmp_path / "out" / "m.onnx"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"path", "max_abs_diff", "checked", "batch_sizes", "passed", "input"} and report["passed"]
    assert report["input"] == "ids"
    assert (tmp_path / "out" / "tokenizer.model").is_file()
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from zoo.cli import main\n"
        "main()\n"
    )
    texts = ["wonderful superb brilliant", "awful boring dull terrible", ""]
    onnx_run = subprocess.run([sys.executable, "-c", blocker, "predict", str(tmp_path / "out" / "m.onnx"), *texts, "--json"],
                              capture_output=True, text=True)
    assert onnx_run.returncode == 0, onnx_run.stderr
    torch_run = run_zoo("predict", str(run), *texts, "--json")
    onnx_rows = [json.loads(line) for line in onnx_run.stdout.splitlines()]
    torch_rows = [json.loads(line) for line in torch_run.stdout.splitlines()]
    assert [r["label"] for r in onnx_rows] == [r["label"] for r in torch_rows]
    assert all(abs(a["probability"] - b["probability"]) < 1e-4 for a, b in zip(onnx_rows, torch_rows))


def test_failed_validation_keeps_a_marked_file_and_exits_non_zero(runs, tmp_path):
    result = run_zoo("export", str(runs["classic"]), "-o", str(tmp_path / "strict.onnx"), "--atol", "0", "--json")
    if result.returncode == 0:  # bit-exact parity happens; then a stricter check cannot fail
        assert json.loads(result.stdout)["max_abs_diff"] == 0.0
        return
    assert "misses its tolerance" in result.stderr and "worst in" in result.stderr
    assert json.loads(result.stdout)["passed"] is False
    assert (tmp_path / "strict.failed.onnx").is_file() and not (tmp_path / "strict.onnx").exists()


def test_bad_export_inputs(runs, tmp_path):
    unknown = run_zoo("export", str(runs["gru"]), "--format", "tflite")
    assert unknown.returncode != 0 and "onnx" in unknown.stderr and "Traceback" not in unknown.stderr
    missing = run_zoo("export", str(tmp_path / "no-run"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    bad = run_zoo("predict", str(corrupt), "text")
    assert bad.returncode != 0 and "not a loadable ONNX model" in bad.stderr and "Traceback" not in bad.stderr
    from zoo.inference.runtime import OnnxClassifier

    with pytest.raises(CheckpointError):
        OnnxClassifier(tmp_path / "absent.onnx")
    with pytest.raises(ExportError, match="opset"):
        export(runs["gru"], opset=9)


def test_text_front_end_normalizes_like_python():
    """The RE2 line-break pattern in the ONNX graph does what zoo.data.normalize_text does, Unicode spaces included."""
    import re

    from zoo.data.text import normalize_text
    from zoo.exporters.onnx.text_frontend import re2_break_pattern
    from zoo.inference.runtime import open_session
    from zoo.plugin_api.onnx import Graph

    graph = Graph(17)
    strings = lambda v: graph.const(np.array(v, dtype=object), dtype=object)
    graph.op("StringRegexReplace", ["text", strings([re2_break_pattern()]), strings([" "])], domain="ai.onnx.contrib",
             global_replace=1, name="clean")
    model = graph.model([onnx.helper.make_tensor_value_info("text", onnx.TensorProto.STRING, ["n"])],
                        [onnx.helper.make_tensor_value_info("clean", onnx.TensorProto.STRING, ["n"])], {})
    model.opset_import.append(onnx.helper.make_opsetid("ai.onnx.contrib", 1))
    spaces = [chr(c) for c in range(0x3001) if re.match(r"\s", chr(c))] + ["\u200b", "x", "/"]
    texts = [f"a<br{s}/>b<BR{s}{s}>c<bR{s}//>d" for s in spaces] + ["<br>", "<br/><br />", "<brr>", "<b r>", "é<Br />ü", ""]
    got = open_session(model.SerializeToString()).run(["clean"], {"text": np.array(texts, dtype=object)})[0]
    assert list(got) == [normalize_text(t) for t in texts]


@pytest.mark.parametrize("max_tokens", [0, 30])
def test_text_front_end_gives_the_training_batch(runs, max_tokens):
    """Strings -> the ids, lengths, head+tail truncation and empty-text rule that training and zoo.runtime use."""
    from zoo.data.batching import pad_rows, truncate
    from zoo.data.tokenizer import Tokenizer
    from zoo.exporters.onnx.text_frontend import text_frontend
    from zoo.inference.runtime import open_session
    from zoo.runs.layout import TOKENIZER, RunDir

    tokenizer = Tokenizer(RunDir.open(runs["classic"]).file(TOKENIZER))
    session = open_session(text_frontend(tokenizer.path.read_bytes(), max_tokens, 17).SerializeToString())
    rng = np.random.default_rng(0)
    words = "great film <br /> awful plot the of a é 😀 ... \t".split(" ")
    texts = [" ".join(rng.choice(words, size=n)) for n in (0, 1, 3, 17, 40, 120, 7, 64)] + ["", "   ", "<br />"]
    for size in (1, 3, len(texts)):
        for start in range(0, len(texts), size):
            chunk = texts[start:start + size]
            ids, lengths = session.run(None, {"text": np.array(chunk, dtype=object)})
            expected = pad_rows([truncate(np.array(r, dtype=np.int64), max_tokens) for r in tokenizer.encode(chunk)])
            assert np.array_equal(ids, expected[0]) and np.array_equal(lengths, expected[1])


@pytest.mark.skipif(not conftest.SHARED_IMDB.exists(), reason="needs ../shared/datasets/imdb")
def test_the_text_graph_segments_real_reviews_as_the_zoo_does(tmp_path):
    """The text front end gives exactly the ids the zoo trains on, ties between equal-scoring segmentations ('.' +
    '......' or '......' + '.') included: both run onnxruntime-extensions' op (zoo.segmenter)."""
    from zoo.config.sections import TokenizerConfig
    from zoo.data.splits import load_splits
    from zoo.data.text import normalize_text
    from zoo.data.tokenizer import Tokenizer, train_sentencepiece
    from zoo.exporters.onnx.text_frontend import text_frontend
    from zoo.inference.runtime import open_session

    splits = load_splits(str(conftest.SHARED_IMDB))
    texts = [normalize_text(t) for t in splits.train.select(range(0, 22_500, 15))["text"]]
    tokenizer = Tokenizer(train_sentencepiece(texts, TokenizerConfig(vocab_size=2000), tmp_path / "real.model"))
    reviews = list(splits.validation["text"])
    session = open_session(text_frontend(tokenizer.path.read_bytes(), 0, 17).SerializeToString())
    differ = 0
    for start in range(0, len(reviews), 100):
        chunk = reviews[start:start + 100]
        ids, lengths = session.run(None, {"text": np.array(chunk, dtype=object)})
        differ += sum(ids[i, :lengths[i]].tolist() != (e or [0]) for i, e in enumerate(tokenizer.encode(chunk)))
    assert differ == 0, f"{differ} of {len(reviews)} validation reviews segment differently"


def test_with_tokenizer_export_takes_raw_text(runs, tmp_path):
    from zoo.inference.predict import predict_texts
    from zoo.inference.runtime import OnnxClassifier

    run = runs["bilstm"]
    report = export(run, with_tokenizer=True)
    assert report["passed"] and report["input"] == "text" and report["max_abs_diff"] <= 1e-4 and report["checked"] > 500
    assert report["path"].endswith("model-text.onnx")
    model = onnx.load(report["path"])
    assert [i.name for i in model.graph.input] == ["text"] and [o.name for o in model.graph.output] == ["logits"]
    assert {"SentencepieceTokenizer", "StringRegexReplace", "LSTM"} <= {n.op_type for n in model.graph.node}
    assert {p.key: p.value for p in model.metadata_props}["input"] == "text"
    moved = tmp_path / "alone.onnx"  # the tokenizer travels inside: no tokenizer.model beside it
    moved.write_bytes((run / "model-text.onnx").read_bytes())
    texts = ["wonderful superb brilliant<br />fun", "awful boring dull terrible", "", "   ", "great " * 200_000]
    runtime = OnnxClassifier(moved)
    got = runtime.predict(texts)
    expected = predict_texts(run, texts)
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    assert all(abs(g["probability"] - e["probability"]) < 1e-4 for g, e in zip(got, expected))
    assert runtime.predict(texts[:1]) == got[:1]
    with pytest.raises(CheckpointError, match="raw text"):
        runtime.logits_from_ids([np.array([3, 4])])


def test_text_model_without_onnxruntime_extensions_says_what_to_install(runs, monkeypatch):
    import zoo.inference.runtime

    path = export(runs["bilstm"], with_tokenizer=True)["path"]
    monkeypatch.setattr(zoo.inference.runtime, "extensions_library", lambda: None)
    with pytest.raises(CheckpointError, match="pip install onnxruntime-extensions"):
        zoo.inference.runtime.OnnxClassifier(path)
    assert zoo.inference.runtime.OnnxClassifier(export(runs["bilstm"])["path"]).predict(["fun"])  # ids models need none


def test_int8_export_reports_accuracy_change_and_speedup(runs):
    from zoo.inference.runtime import OnnxClassifier

    report = export(runs["classic"], quantize="int8")
    assert report["passed"] and report["quantization"] == "int8" and report["path"].endswith("model.int8.onnx")
    assert abs(report["accuracy_change"]) <= 0.005 and 0 <= report["prediction_agreement"] <= 1
    assert set(report["speed"]) == {"batch 1", "batch 64"}
    assert all(s["speedup"] > 0 and s["fp32_reviews_per_second"] > 0 for s in report["speed"].values())
    model = onnx.load(report["path"])
    assert "DynamicQuantizeLSTM" in {n.op_type for n in model.graph.node}
    assert OnnxClassifier(report["path"]).predict(["great fun"])[0]["label"] in ("pos", "neg")
    for arch in ("peephole", "gru"):  # peepholes go to DynamicQuantizeLSTM too; GRU keeps fp32 (no int8 kernel)
        assert export(runs[arch], quantize="int8")["passed"]
    both = export(runs["bilstm"], quantize="int8", with_tokenizer=True)
    assert both["passed"] and both["input"] == "text" and both["path"].endswith("model-text.int8.onnx")
    with pytest.raises(ExportError, match="int8"):
        export(runs["classic"], quantize="int4")
