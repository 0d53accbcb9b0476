"""One segmentation everywhere (zoo.data.segmenter): training, prediction and the text-in graph read a text alike, and the
sentencepiece library's segmentation (Python 3.14, no onnxruntime-extensions) is a fallback the run's record names."""

import json

import conftest
import pytest
from conftest import run_zoo

from zoo.data.segmenter import SEGMENTER_ENV, Segmenter, extensions_library

TINY = conftest.TINY + ["train.epochs=1"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    yield from conftest.tiny_hub_data(tmp_path_factory, train=200, test=40)


@pytest.mark.skipif(extensions_library() is None, reason="needs onnxruntime-extensions")
def test_both_segmenters_encode_and_name_themselves(tiny_data, tmp_path, monkeypatch):
    from zoo.config.sections import TokenizerConfig
    from zoo.data.encoding import encode_splits
    from zoo.data.splits import load_splits
    from zoo.data.text import normalize_text
    from zoo.data.tokenizer import Tokenizer, tokenizer_for

    splits = load_splits(tiny_data)
    model = tokenizer_for(splits, TokenizerConfig(vocab_size=80)).path
    texts = list(splits.validation["text"])
    by_op = Tokenizer(model)
    assert by_op.segmenter.name.startswith("onnxruntime-extensions-")  # made on first use
    monkeypatch.setenv(SEGMENTER_ENV, "sentencepiece")
    by_library = Tokenizer(model)
    assert by_library.segmenter.name.startswith("sentencepiece-")
    decode = by_library.processor.decode
    ops, library = by_op.encode(texts), by_library.encode(texts)
    assert [decode(ids) for ids in ops] == [decode(ids) for ids in library]  # the same text, segmented either way
    assert by_op.encode(["", "  "]) == by_library.encode(["", "  "]) == [[], []]
    monkeypatch.delenv(SEGMENTER_ENV)
    normalized = [normalize_text(t) for t in texts] * 3
    assert Segmenter(model.read_bytes()).encode(normalized, threads=2) == ops * 3  # in chunks, on two threads
    import zoo.data.encoding

    first = encode_splits(splits, by_op, ["validation"])
    second = encode_splits(splits, by_library, ["validation"])  # its own cache entry, not the other's
    assert len(list((zoo.data.encoding.cache_dir() / "encoded").glob("*-validation.arrow"))) == 2
    assert first["validation"].tokens.tolist() == [t for ids in ops for t in ids]
    assert second["validation"].tokens.tolist() == [t for ids in library for t in ids]


@pytest.mark.skipif(extensions_library() is None, reason="needs onnxruntime-extensions")
def test_a_run_records_its_segmenter_and_another_one_is_noted(tiny_data, tmp_path):
    out = tmp_path / "run"
    trained = run_zoo("train", "gru", "--data", tiny_data, "--out", str(out), "--threads", "1",
                      *[f"--set={s}" for s in TINY], env={SEGMENTER_ENV: "sentencepiece"})
    assert trained.returncode == 0, trained.stderr
    assert json.loads((out / "config.json").read_text())["tokenizer"]["segmenter"].startswith("sentencepiece-")
    predicted = run_zoo("predict", str(out), "superb film")
    assert predicted.returncode == 0 and "segmented by sentencepiece" in predicted.stderr
    same = run_zoo("predict", str(out), "superb film", env={SEGMENTER_ENV: "sentencepiece"})
    assert same.returncode == 0 and "segmented by" not in same.stderr
