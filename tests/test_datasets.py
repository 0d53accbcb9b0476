"""The user's own data: every source format, column detection, string / int / ClassLabel labels, K classes from
data to ONNX and predictions, no test split, small-data tokenizers, and slices of the real SST-2 and SST-5."""

import json

import conftest
import numpy as np
import pytest
from conftest import run_zoo
from text_fixtures import topic_rows, write

from zoo.config.sections import TokenizerConfig
from zoo.data.splits import DataSpec, load_splits
from zoo.errors import DataError

SHARED = conftest.ROOT.parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_a_folder_of_files_named_by_split(tmp_path, suffix):
    folder = tmp_path / "data"
    write(folder / f"train{suffix}", topic_rows(120, 1), text="sentence", label="label")
    write(folder / f"dev{suffix}", topic_rows(30, 2), text="sentence", label="label")
    write(folder / f"test{suffix}", topic_rows(30, 3), text="sentence", label="label")
    splits = load_splits(str(folder))
    assert splits.classes == ["cooking", "music", "sports"] and splits.columns == ("sentence", "label")
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (120, 30, 30) and splits.own_validation
    assert splits.train[0]["text"] == topic_rows(1, 1)[0]["body"] and splits.train[0]["label"] == 0


def test_a_folder_with_a_readme_is_read_without_library_chatter(tmp_path):
    """A dataset folder with its own README.md (as ../shared/datasets' have): no "Repo card metadata block"
    warning and, off a terminal, no progress bars from `datasets`, only the zoo's own lines."""
    folder = tmp_path / "data"
    write(folder / "train.jsonl", topic_rows(120, 1), text="sentence", label="label")
    write(folder / "test.jsonl", topic_rows(30, 3), text="sentence", label="label")
    (folder / "README.md").write_text("# Topics\n\nA dataset card without a metadata block.\n")
    result = run_zoo("data", "--data", str(folder))
    assert result.returncode == 0, result.stderr
    assert "cooking" in result.stdout
    assert "Repo card" not in result.stderr and "examples/s" not in result.stderr, result.stderr


def test_named_files_other_columns_and_no_test_split(tmp_path):
    train = write(tmp_path / "a.jsonl", topic_rows(100, 1), text="body", label="topic")
    with pytest.raises(DataError, match="columns: body, topic.*--text-column"):
        load_splits(f"train={train}")
    spec = DataSpec(f"train={train}", text_column="body", label_column="topic")
    splits = load_splits(spec)
    assert splits.test is None and not splits.own_validation and len(splits.validation) == 9
    assert np.bincount(splits.validation["label"]).tolist() == [3, 3, 3]  # 10% of each class (34, 33, 33)
    other = write(tmp_path / "b.csv", topic_rows(60, 4), text="body", label="topic")
    mixed = load_splits(DataSpec(f"train={train},test={other}", text_column="body", label_column="topic"))
    assert len(mixed.test) == 60 and mixed.fingerprint != splits.fingerprint
    assert load_splits(DataSpec(str(train), text_column="body", label_column="topic")).fingerprint == splits.fingerprint
    limited = load_splits(DataSpec(f"train={train}", text_column="body", label_column="topic", limit_train=20))
    assert len(limited.train) == 20 and limited.fingerprint != splits.fingerprint


def test_labels_in_other_splits_must_be_known_to_train(tmp_path):
    train = write(tmp_path / "train.csv", topic_rows(60, 1), text="text", label="label")
    rows = topic_rows(12, 2)
    rows[5]["topic"] = "politics"
    test = write(tmp_path / "test.csv", rows, text="text", label="label")
    with pytest.raises(DataError, match="'politics' that the train split never has"):
        load_splits(f"train={train},test={test}")
    single = write(tmp_path / "one.csv", [{"body": "x y", "topic": "only"}] * 20, text="text", label="label")
    with pytest.raises(DataError, match="single class"):
        load_splits(str(single))


def test_int_labels_keep_their_order_and_name(tmp_path):
    rows = [{"body": r["body"], "topic": {"cooking": 10, "music": 2, "sports": 7}[r["topic"]]} for r in topic_rows(90, 1)]
    splits = load_splits(str(write(tmp_path / "train.parquet", rows, text="review", label="class")))
    assert splits.classes == ["2", "7", "10"] and splits.columns == ("review", "class")
    assert sorted(set(splits.train["label"])) == [0, 1, 2]


def test_small_data_vocabulary_adapts_or_says_which_size(tmp_path, capsys):
    from zoo.data.tokenizer import tokenizer_for

    splits = load_splits(str(write(tmp_path / "train.csv", topic_rows(60, 1), text="text", label="label")))
    tokenizer = tokenizer_for(splits, TokenizerConfig())  # 8192 pieces: far more than 60 short texts support
    assert 64 <= tokenizer.vocab_size < 8192
    assert f"at most {tokenizer.vocab_size}" in capsys.readouterr().err
    rows = [{"body": "".join(chr(0x4E00 + (i * 7 + j) % 400) for j in range(30)), "topic": "ab"[i % 2]} for i in range(60)]
    many_chars = load_splits(str(write(tmp_path / "chars.csv", rows, text="text", label="label")))
    with pytest.raises(DataError, match=r"--set tokenizer.vocab_size=\d+"):
        tokenizer_for(many_chars, TokenizerConfig(vocab_size=64))


# The recipes' small_data dropout (0.5, 0.2) is too much for an 8-wide model on 600 texts: keep gru's usual settings.
TINY_DROPOUT = ["classifier.embedding_dropout=0.3", "classifier.word_dropout=0"]


@pytest.fixture(scope="module")
def topics_run(tmp_path_factory):
    """A three-class gru run on JSON lines files (train / dev / test), trained and exported through the CLI."""
    root = tmp_path_factory.mktemp("topics")
    folder = root / "data"
    for name, count, seed in (("train", 600, 1), ("dev", 90, 2), ("test", 90, 3)):
        write(folder / f"{name}.jsonl", topic_rows(count, seed), text="text", label="label")
    env = {"ZOO_CACHE": str(root / "cache")}
    out = root / "run"
    trained = run_zoo("train", "gru", "--data", str(folder), "--out", str(out), "--threads", "1", "--json",
                      *[f"--set={s}" for s in conftest.TINY + ["train.epochs=8", *TINY_DROPOUT]], env=env)
    assert trained.returncode == 0, trained.stderr
    return out, json.loads(trained.stdout.splitlines()[-1]), env


def test_three_classes_from_data_to_predictions(topics_run):
    out, summary, env = topics_run
    assert summary["classes"] == ["cooking", "music", "sports"] and summary["test_accuracy"] > 0.9
    evaluated = run_zoo("evaluate", str(out), env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "macro-F1" in evaluated.stdout and "cooking" in evaluated.stdout and (out / "confusion.png").is_file()
    metrics = json.loads(run_zoo("evaluate", str(out), "--json", env=env).stdout)
    assert np.array(metrics["confusion_matrix"]).shape == (3, 3) and sum(map(sum, metrics["confusion_matrix"])) == 90
    assert set(metrics["per_class"]) == {"cooking", "music", "sports"} and metrics["accuracy"] == summary["test_accuracy"]
    texts = ["bake the garlic in the oven", "a guitar chorus and drums", "the striker scored a goal"]
    from_run = [json.loads(line) for line in run_zoo("predict", str(out), *texts, "--json", env=env).stdout.splitlines()]
    assert [r["label"] for r in from_run] == ["cooking", "music", "sports"]
    assert all(set(r["probabilities"]) == {"cooking", "music", "sports"} for r in from_run)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 and r["probability"] == max(r["probabilities"].values())
               for r in from_run)
    plain = run_zoo("predict", str(out), texts[0], env=env).stdout
    assert plain.startswith("cooking\t")

    import onnx

    for flags, name in (([], "model.onnx"), (["--with-tokenizer"], "model-text.onnx")):
        exported = run_zoo("export", str(out), "--format", "onnx", *flags, "--json", env=env)
        assert exported.returncode == 0, exported.stderr
        assert json.loads(exported.stdout)["passed"]
        model = onnx.load(str(out / name))
        dims = [d.dim_value or d.dim_param for d in model.graph.output[0].type.tensor_type.shape.dim]
        assert dims == ["batch", 3]
        assert json.loads({p.key: p.value for p in model.metadata_props}["labels"]) == ["cooking", "music", "sports"]
        onnx_rows = [json.loads(line) for line in
                     run_zoo("predict", str(out / name), *texts, "--json", env=env).stdout.splitlines()]
        assert [r["label"] for r in onnx_rows] == [r["label"] for r in from_run]
        assert np.allclose([list(r["probabilities"].values()) for r in onnx_rows],
                           [list(r["probabilities"].values()) for r in from_run], atol=1e-5)

    from zoo.inference.runtime import OnnxClassifier

    assert [p["label"] for p in OnnxClassifier(out / "model.onnx").predict(texts)] == ["cooking", "music", "sports"]


def test_three_classes_int8_export(topics_run):
    out, _, env = topics_run
    exported = run_zoo("export", str(out), "--format", "onnx", "--quantize", "int8", "--max-accuracy-drop", "5",
                       "--json", env=env)
    assert exported.returncode == 0, exported.stderr
    report = json.loads(exported.stdout)
    assert report["passed"] and report["validation_accuracy_onnx"] > 0.85


def test_csv_with_string_labels_and_no_test_split_trains_evaluates_and_exports(tmp_path):
    data = write(tmp_path / "reviews.csv", topic_rows(300, 1), text="review", label="sentiment")
    out = tmp_path / "run"
    env = {"ZOO_CACHE": str(tmp_path / "cache")}
    trained = run_zoo("train", "bilstm", "--data", str(data), "--out", str(out), "--threads", "1",
                      *[f"--set={s}" for s in conftest.TINY + ["train.epochs=2"]], env=env)
    assert trained.returncode == 0, trained.stderr
    assert "no test split" in trained.stdout
    assert "no test split, so no test score exists" in (out / "README.md").read_text()
    assert not any(json.loads(line)["type"] == "test" for line in (out / "metrics.jsonl").read_text().splitlines())
    missing = run_zoo("evaluate", str(out), env=env)
    assert missing.returncode != 0 and "no test split" in missing.stderr and "Traceback" not in missing.stderr
    assert run_zoo("evaluate", str(out), "--split", "validation", env=env).returncode == 0
    assert run_zoo("export", str(out), env=env).returncode == 0
    predicted = run_zoo("predict", str(out / "model.onnx"), "a guitar chorus", "--json", env=env)
    assert json.loads(predicted.stdout)["label"] in ("cooking", "music", "sports")


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/datasets")
def test_real_sst2_and_sst5():
    sst2 = load_splits(str(SHARED / "sst2"))
    assert sst2.columns == ("sentence", "label") and sst2.classes == ["0", "1"] and sst2.own_validation
    assert (len(sst2.train), len(sst2.validation), len(sst2.test)) == (67_349, 872, 1_821)
    sst5 = load_splits(DataSpec(str(SHARED / "sst5"), limit_train=500))
    assert sst5.classes == ["0", "1", "2", "3", "4"] and len(sst5.train) == 500 and len(sst5.test) == 2_210
    assert set(sst5.train["label"]) == {0, 1, 2, 3, 4}
