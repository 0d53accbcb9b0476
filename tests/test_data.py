"""Data loading in every layout, validation carving, tokenizer determinism and caching, batching."""

import numpy as np
import pytest
from conftest import SHARED_IMDB, run_zoo
from imdb_fixtures import write_hub_folder, write_stanford_folder, write_tarball

from zoo.config.sections import TokenizerConfig
from zoo.data.batching import BucketBatchSampler, collate, evaluation_batches
from zoo.data.encoding import encode_splits
from zoo.data.splits import load_splits
from zoo.data.text import normalize_text
from zoo.data.tokenizer import Tokenizer, tokenizer_for, train_sentencepiece
from zoo.errors import DataError

SMALL_VOCAB = TokenizerConfig(vocab_size=80)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def layouts(tmp_path):
    folder = write_stanford_folder(tmp_path / "stanford", unsup=30)
    return {
        "stanford-folder": folder,
        "stanford-parent": folder.parent,
        "tarball": write_tarball(folder, tmp_path / "aclImdb_v1.tar.gz"),
        "hub-folder": write_hub_folder(tmp_path / "hub"),
    }


@pytest.mark.parametrize("layout", ["stanford-folder", "stanford-parent", "tarball", "hub-folder"])
def test_every_layout_loads_with_a_stratified_validation_split(layouts, layout):
    splits = load_splits(str(layouts[layout]))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (180, 20, 100)
    assert sum(splits.validation["label"]) == 10  # 10% of each label
    assert sum(splits.train["label"]) == 90
    assert not set(splits.train["text"]) & set(splits.validation["text"])
    assert set(splits.train.column_names) == {"text", "label"}
    assert splits.classes == ["neg", "pos"]  # a ClassLabel in the parquet, or aclImdb's folder names
    if layout != "hub-folder":  # the parsed aclImdb keeps the ratings from the file names
        from zoo.data.stanford import find_stanford_folder, load_stanford

        path = layouts[layout]
        raw = load_stanford(path if path.is_file() else find_stanford_folder(path))
        assert all((r >= 7) == (l == 1) for r, l in zip(raw["test"]["rating"], raw["test"]["label"]))


def test_stanford_layouts_agree_and_split_is_seeded(layouts):
    a = load_splits(str(layouts["stanford-folder"]))
    b = load_splits(str(layouts["tarball"]))
    assert a.train["text"] == b.train["text"] and a.validation["text"] == b.validation["text"]
    assert load_splits(str(layouts["tarball"]), seed=1).validation["text"] != b.validation["text"]
    assert load_splits(str(layouts["tarball"]), with_unsupervised=True).unsupervised.num_rows == 30


def test_data_source_from_environment(layouts, monkeypatch):
    monkeypatch.setenv("ZOO_DATA", str(layouts["tarball"]))
    assert load_splits().source == str(layouts["tarball"])


def test_normalization_turns_html_breaks_into_spaces():
    assert normalize_text("Good.<br /><br />Bad.<BR>ok<br/>") == "Good.  Bad. ok "


def test_tokenizer_is_deterministic_and_cached(layouts, tmp_path, monkeypatch):
    splits = load_splits(str(layouts["hub-folder"]))
    texts = [normalize_text(t) for t in splits.train["text"]]
    one = train_sentencepiece(texts, SMALL_VOCAB, tmp_path / "one.model")
    two = train_sentencepiece(texts, SMALL_VOCAB, tmp_path / "two.model")
    assert one.read_bytes() == two.read_bytes()
    tokenizer = tokenizer_for(splits, SMALL_VOCAB)
    assert tokenizer.vocab_size == 80 and tokenizer.processor.pad_id() == 0 and tokenizer.processor.unk_id() == 1
    assert tokenizer.processor.bos_id() == -1 and tokenizer.processor.eos_id() == -1
    import zoo.data.tokenizer

    monkeypatch.setattr(zoo.data.tokenizer, "train_sentencepiece", lambda *a, **k: pytest.fail("retrained a cached tokenizer"))
    assert tokenizer_for(load_splits(str(layouts["hub-folder"])), SMALL_VOCAB).sha256 == tokenizer.sha256


def test_tokenizer_never_sees_validation_or_test(layouts, monkeypatch):
    import zoo.data.tokenizer

    seen = []
    real = zoo.data.tokenizer.train_sentencepiece
    monkeypatch.setattr(zoo.data.tokenizer, "train_sentencepiece", lambda texts, *a: (seen.extend(texts), real(texts, *a))[1])
    splits = load_splits(str(layouts["tarball"]))
    tokenizer_for(splits, SMALL_VOCAB)
    assert sorted(seen) == sorted(normalize_text(t) for t in splits.train["text"])


def test_encoded_splits_are_cached(layouts, monkeypatch):
    splits = load_splits(str(layouts["tarball"]))
    tokenizer = tokenizer_for(splits, SMALL_VOCAB)
    first = encode_splits(splits, tokenizer)
    assert first["train"].ids(0).tolist() == tokenizer.encode([splits.train[0]["text"]])[0]
    monkeypatch.setattr(type(tokenizer), "encode", lambda *a, **k: pytest.fail("re-encoded a cached split"))
    second = encode_splits(splits, tokenizer)
    for name in ("train", "validation", "test"):
        assert np.array_equal(first[name].tokens, second[name].tokens)
        assert np.array_equal(first[name].labels, second[name].labels)


def test_sampler_visits_every_example_once_per_epoch_under_both_caps():
    lengths = np.random.default_rng(0).integers(1, 500, size=1003)
    sampler = BucketBatchSampler(lengths, batch_size=32, max_batch_tokens=4000, seed=7)
    epochs = [sampler.epoch_batches(e) for e in range(3)]
    for batches in epochs:
        seen = np.concatenate(batches)
        assert sorted(seen.tolist()) == list(range(1003))
        for batch in batches:
            assert len(batch) <= 32 and len(batch) * lengths[batch].max() <= max(4000, lengths[batch].max())
    assert [b.tolist() for b in epochs[0]] != [b.tolist() for b in epochs[1]]  # reshuffled per epoch
    assert [b.tolist() for b in sampler.epoch_batches(1)] == [b.tolist() for b in epochs[1]]  # seeded
    padded = sum(len(b) * lengths[b].max() for b in epochs[0])
    assert lengths.sum() / padded > 0.9  # bucketing keeps padding small
    assert sorted(np.concatenate(evaluation_batches(lengths, 32)).tolist()) == list(range(1003))


def test_collate_pads_and_truncates_head_and_tail(layouts):
    from zoo.data.encoding import EncodedSplit

    split = EncodedSplit.from_lists("x", [[5, 6, 7, 8, 9, 10], [3], []], [1, 0, 1])
    ids, lengths, labels = collate(split, np.array([0, 1, 2]))
    assert ids.dtype == np.int64 and ids.shape == (3, 6) and lengths.tolist() == [6, 1, 1]
    assert ids[1].tolist() == [3, 0, 0, 0, 0, 0] and labels.tolist() == [1, 0, 1]
    ids, lengths, _ = collate(split, np.array([0]), max_tokens=3)
    assert ids.tolist() == [[5, 6, 10]] and lengths.tolist() == [3]


@pytest.mark.parametrize("problem", ["missing", "wrong-layout", "empty-split", "bad-utf8", "bad-labels", "corrupt-tarball"])
def test_bad_input_is_a_clear_error(tmp_path, problem):
    if problem == "missing":
        source, match = tmp_path / "nowhere", "does not exist"
    elif problem == "wrong-layout":
        (tmp_path / "notes.txt").write_text("hello")
        source, match = tmp_path, "holds no data files"
    elif problem == "empty-split":
        source, match = write_hub_folder(tmp_path / "hub", test=0), "test-00000-of-00001.parquet has no rows"
    elif problem == "bad-utf8":
        folder = write_stanford_folder(tmp_path / "s")
        bad = next((folder / "train" / "pos").iterdir())
        bad.write_bytes(b"caf\xe9 au lait")
        source, match = folder, f"{bad.name} is not valid UTF-8"
    elif problem == "bad-labels":
        source, match = write_hub_folder(tmp_path / "hub", labels_override={"test": 3}), "label.* 3 that the train split never has"
    else:
        source = tmp_path / "aclImdb_v1.tar.gz"
        source.write_bytes(b"\x1f\x8b this is not gzip")
        match = "not a readable tarball"
    with pytest.raises(DataError, match=match):
        load_splits(str(source))


def test_offline_hub_fails_fast_with_a_hint(monkeypatch):
    import time

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("ZOO_DATA", raising=False)
    start = time.monotonic()
    with pytest.raises(DataError, match="--data"):
        load_splits()
    assert time.monotonic() - start < 30


def test_cli_data_json(layouts, tmp_path):
    import json

    result = run_zoo("data", "--data", str(layouts["tarball"]), "--vocab-size", "80", "--json",
                     env={"ZOO_CACHE": str(tmp_path / "cli-cache")})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["splits"]["train"] == {"rows": 180, "labels": {"neg": 90, "pos": 90}}
    assert summary["classes"] == ["neg", "pos"] and summary["columns"] == ["text", "label"]
    assert summary["splits"]["validation"]["rows"] == 20 and summary["tokenizer"]["vocab_size"] == 80
    assert set(summary["tokens"]["train"]) >= {"median", "p90", "max"}
    bad = run_zoo("data", "--data", str(tmp_path / "missing"))
    assert bad.returncode != 0 and bad.stderr.startswith("Error:") and "Traceback" not in bad.stderr


@pytest.mark.skipif(not SHARED_IMDB.exists(), reason="needs ../shared/datasets/imdb")
def test_real_imdb_slice(tmp_path):
    splits = load_splits(str(SHARED_IMDB))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (22_500, 2_500, 25_000)
    assert splits.classes == ["neg", "pos"]  # from the dataset card's ClassLabel
    assert sum(splits.validation["label"]) == 1_250
    texts = [normalize_text(t) for t in splits.train.select(range(0, 22_500, 45))["text"]]
    model = train_sentencepiece(texts, TokenizerConfig(vocab_size=1000), tmp_path / "slice.model")
    ids = Tokenizer(model).encode(["This movie was great.<br />Really!"])[0]
    assert ids and 0 not in ids
