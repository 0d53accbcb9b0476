"""`zoo pretrain` and `zoo train --init-from`: the language model, its data, exact resume, fine-tuning schedules."""

import json
import signal

import conftest
import numpy as np
import pytest
import torch
from conftest import run_zoo

from zoo.data.encoding import EncodedSplit, chunk_texts
from zoo.data.splits import load_splits
from zoo.errors import ConfigError, DataError, PluginError
from zoo.models.build import build_language_model
from zoo.models.language_model import SampledSoftmax, verify_causal
from zoo.registry.resolve import resolve
from zoo.training.classify import train
from zoo.training.job import RunRequest
from zoo.training.language import pretrain
from zoo.training.optimizer import group_scale

LM = conftest.TINY + ["train.epochs=2", "train.checkpoint_every=5", "train.log_every=3", "pretrain.samples=30",
                      "pretrain.chunk_tokens=40"]
TIMES = {"train_seconds", "tokens_per_second"}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    yield from conftest.tiny_hub_data(tmp_path_factory, train=240, test=120, unsup=300)


@pytest.fixture(scope="module")
def lm_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lm"
    summary = pretrain(RunRequest(resolve("bilstm", LM), data=tiny_data, out=out, threads=1))
    return out, summary


def records(out):
    return [{k: v for k, v in json.loads(line).items() if k not in TIMES}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_pretrain_run_reads_train_and_unsupervised_texts_only(lm_run):
    out, summary = lm_run
    for name in ("config.json", "tokenizer.model", "lm.pt", "last.pt", "metrics.jsonl", "curves.png", "README.md"):
        assert (out / name).is_file(), name
    info = json.loads((out / "config.json").read_text())
    assert info["kind"] == "pretrain"
    assert info["data"]["texts"] == {"train": 216, "unsupervised": 300}  # 240 minus the 10% validation carve
    assert info["config"]["tokenizer"]["use_unsupervised"] is True
    epochs = [r for r in records(out) if r["type"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    # it learns: below a uniform guess over the 80 pieces, and better in its second epoch than in its first
    assert epochs[1]["validation_perplexity"] < epochs[0]["validation_perplexity"] < 80
    assert summary["best_validation_perplexity"] == pytest.approx(epochs[1]["validation_perplexity"])
    assert "test" not in {r["type"] for r in records(out)}


def test_unlabelled_texts_that_repeat_validation_or_test_texts_are_left_out(tmp_path):
    from datasets import Dataset
    from imdb_fixtures import write_hub_folder

    folder = write_hub_folder(tmp_path / "hub", train=60, test=30, unsup=5)
    plain = load_splits(str(folder), with_unsupervised=True)
    test_text, validation_text, train_text = plain.test[0]["text"], plain.validation[0]["text"], plain.train[0]["text"]
    unlabelled = [f"  {test_text.replace(' ', '<br />', 1)} ", validation_text.replace(" ", "   "), train_text, "fresh words"]
    Dataset.from_dict({"text": unlabelled, "label": [-1] * 4}).to_parquet(
        str(folder / "plain_text" / "unsupervised-00000-of-00001.parquet"))
    splits = load_splits(str(folder), with_unsupervised=True)
    assert splits.held_out_unsupervised == 2  # equal up to HTML line breaks and whitespace
    assert splits.unsupervised["text"] == [train_text, "fresh words"]  # train texts are the classifier's own anyway
    assert splits.fingerprint != plain.fingerprint


def test_init_from_refuses_a_language_model_that_learned_the_test_texts(tiny_data, lm_run, tmp_path):
    from datasets import Dataset

    lm, _ = lm_run
    ours = load_splits(tiny_data)
    learned = load_splits(tiny_data, with_unsupervised=True).unsupervised["text"]
    train_file, test_file = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    Dataset.from_dict({"text": ours.test["text"], "label": ours.test["label"]}).to_json(str(train_file))
    Dataset.from_dict({"text": learned[:7] + ours.train["text"][:3], "label": [0] * 5 + [1] * 5}).to_json(str(test_file))
    args = ["train", "bilstm", "--data", f"train={train_file},test={test_file}", "--threads", "1",
            *[f"--set={s}" for s in conftest.TINY], "--init-from", str(lm), "--out", str(tmp_path / "run")]
    result = run_zoo(*args)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "learned from 10 of its test texts" in result.stderr and "zoo pretrain" in result.stderr
    assert not (tmp_path / "run" / "model.pt").exists()
    with pytest.raises(DataError, match="learned from 10 of its test texts"):  # the API says the same
        train(RunRequest(resolve("bilstm", conftest.TINY), data=f"train={train_file},test={test_file}",
                           out=tmp_path / "api", threads=1, init_from=lm))


def test_a_fine_tuning_recipe_on_data_without_unlabelled_texts_says_what_to_do(tmp_path):
    rows = "\n".join(json.dumps({"text": f"words {i}", "label": i % 2}) for i in range(20))
    (tmp_path / "train.jsonl").write_text(rows)
    result = run_zoo("train", "bilstm-ft", "--data", str(tmp_path / "train.jsonl"), "--out", str(tmp_path / "run"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "--init-from" in result.stderr and "--set tokenizer.use_unsupervised=false" in result.stderr


def test_chunks_cover_every_token_once():
    split = EncodedSplit.from_lists("x", [[1, 2, 3, 4, 5], [6], [7, 8, 9]], [0, 0, 0])
    other = EncodedSplit.from_lists("y", [[10, 11, 12, 13]], [-1])
    chunks = chunk_texts([split, other], 2)
    assert [chunks.ids(i).tolist() for i in range(len(chunks))] == [[1, 2], [3, 4], [7, 8], [10, 11], [12, 13]]
    # a lone token (the review [6], the tail [5] and [9]) has nothing to predict and is left out


def test_sampled_softmax_covering_the_vocabulary_is_the_full_softmax():
    config = resolve("classic", ["hidden_size=8", "embedding_dim=8"])
    torch.manual_seed(0)
    model = build_language_model(config, 50)
    counts = np.ones(50, dtype=np.int64)
    sampled = SampledSoftmax(counts, 100_000, "cpu")  # every token drawn: inclusion 1
    ids, lengths = torch.randint(1, 50, (3, 7)), torch.tensor([7, 5, 2])
    (features, targets), = model(ids, lengths)
    full_without_padding = torch.nn.functional.cross_entropy(
        (features @ model.embedding.weight.T + model.output_bias)[:, 1:], targets - 1, reduction="sum")
    assert float(sampled.loss(model, features, targets).detach()) == pytest.approx(float(full_without_padding.detach()), rel=1e-5)


@pytest.mark.parametrize("name,settings,causal", [
    ("classic", ["num_layers=2"], True), ("gru", [], True), ("peephole", [], True), ("bilstm", [], True),
    ("bilstm", ["num_layers=2"], False),  # layer 2's forward direction reads layer 1's backward one
])
def test_only_causal_encoders_are_pretrained(name, settings, causal):
    model = build_language_model(resolve(name, ["hidden_size=8", "embedding_dim=8", *settings]), 50)
    if causal:
        verify_causal(model, name)
    else:
        with pytest.raises(PluginError, match="num_layers=1"):
            verify_causal(model, name)


def test_kill_9_then_resume_ends_like_an_uninterrupted_run(tiny_data, lm_run, tmp_path):
    reference, _ = lm_run
    out = tmp_path / "cut"
    args = ["pretrain", "bilstm", "--data", tiny_data, "--out", str(out), "--threads", "1", *[f"--set={s}" for s in LM]]
    killed = run_zoo(*args, env={"ZOO_FAILPOINT": "checkpoint-write:3"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_zoo("pretrain", "--resume", str(out), "--threads", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert records(out) == records(reference)
    mine, theirs = torch.load(out / "lm.pt", weights_only=True), torch.load(reference / "lm.pt", weights_only=True)
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    wrong = run_zoo("train", "--resume", str(out))
    assert wrong.returncode == 1 and "zoo pretrain --resume" in wrong.stderr
    for command in (["evaluate", str(out)], ["predict", str(out), "great film"], ["export", str(out), "--format", "onnx"]):
        result = run_zoo(*command)
        assert result.returncode == 1 and "--init-from" in result.stderr and "Traceback" not in result.stderr, command


def test_budget_stops_and_snapshots(tiny_data, tmp_path):
    out = tmp_path / "budget"
    result = run_zoo("pretrain", "bilstm", "--data", tiny_data, "--out", str(out), "--threads", "1", "--budget", "0.02",
                     "--json", *[f"--set={s}" for s in LM + ["train.epochs=1000", "pretrain.snapshot_minutes=0.005"]])
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert 1.2 <= summary["seconds"] < 30 and summary["epochs"] < 1000
    assert len(summary["snapshots"]) >= 3 and all(name.startswith("minutes-") for name in summary["snapshots"])


def test_fine_tune_starts_from_the_language_model(tiny_data, lm_run, tmp_path):
    lm, _ = lm_run
    settings = conftest.TINY + ["train.epochs=1", "train.lr_decay=2.6", "train.unfreeze_fraction=0.45"]
    out = tmp_path / "ft"
    config = resolve("bilstm", settings)
    summary = train(RunRequest(config, data=tiny_data, out=out, threads=1, max_steps=4, init_from=lm))
    tuned = torch.load(out / "model.pt", weights_only=True)
    pretrained = torch.load(lm / "lm.pt", weights_only=True)
    # 4 steps; the encoder joins at step 0.45 * 4 = 1.8, the embedding at 3.6: steps 0-3 leave it as pretrained
    assert torch.equal(tuned["embedding.weight"], pretrained["embedding.weight"])
    encoder = [k for k in tuned if k.startswith("encoder.")]
    assert encoder and all(tuned[k].shape == pretrained[k].shape for k in encoder)
    assert any(not torch.equal(tuned[k], pretrained[k]) for k in encoder)
    assert (out / "tokenizer.model").read_bytes() == (lm / "tokenizer.model").read_bytes()
    assert "zoo pretrain" in (out / "README.md").read_text() and summary["steps"] == 4
    snapshot_out = tmp_path / "from-snapshot"
    train(RunRequest(config, data=tiny_data, out=snapshot_out, threads=1, max_steps=2, init_from=lm / "lm.pt"))


def test_init_from_refuses_what_does_not_fit(tiny_data, lm_run, tmp_path):
    lm, _ = lm_run
    with pytest.raises(ConfigError, match=r"hidden_size = 8 vs 16"):
        train(RunRequest(resolve("bilstm", conftest.TINY + ["hidden_size=16"]), data=tiny_data, out=tmp_path / "a",
                           init_from=lm))
    with pytest.raises(ConfigError, match="architecture 'bilstm' vs 'gru'"):
        train(RunRequest(resolve("gru", conftest.TINY), data=tiny_data, out=tmp_path / "b", init_from=lm))
    result = run_zoo("train", "bilstm", "--data", tiny_data, "--init-from", str(tmp_path))
    assert result.returncode == 1 and "not a `zoo pretrain` run" in result.stderr and "Traceback" not in result.stderr


def test_discriminative_rates_and_unfreezing_schedule():
    config = resolve("bilstm", ["train.lr_decay=2.0", "train.unfreeze_fraction=0.1"]).train
    assert [group_scale(g, 0, 100, config) for g in ("head", "encoder", "embedding")] == [1.0, 0.0, 0.0]
    assert [group_scale(g, 10, 100, config) for g in ("head", "encoder", "embedding")] == [1.0, 0.5, 0.0]
    assert [group_scale(g, 20, 100, config) for g in ("head", "encoder", "embedding")] == [1.0, 0.5, 0.25]
    plain = resolve("bilstm").train
    assert {group_scale(g, 0, 100, plain) for g in ("head", "encoder", "embedding")} == {1.0}


def test_a_tokenizer_that_learns_from_the_unlabelled_texts_without_pretraining(tiny_data, tmp_path):
    out = tmp_path / "unlabelled"
    settings = [f"--set={s}" for s in conftest.TINY + ["train.epochs=1", "tokenizer.use_unsupervised=true"]]
    trained = run_zoo("train", "bilstm", "--data", tiny_data, "--out", str(out), "--threads", "1", *settings)
    assert trained.returncode == 0, trained.stderr
    assert json.loads((out / "config.json").read_text())["data"]["with_unsupervised"] is True
    evaluated = run_zoo("evaluate", str(out), "--json")  # the fingerprint includes the unlabelled texts again
    assert evaluated.returncode == 0, evaluated.stderr


def test_the_full_softmax_trains_and_the_language_model_has_its_own_settings(tiny_data, tmp_path):
    full = pretrain(RunRequest(resolve("bilstm", LM + ["pretrain.softmax=full"]), data=tiny_data, out=tmp_path / "full",
                               threads=1, max_steps=3))
    sampled = pretrain(RunRequest(resolve("bilstm", LM), data=tiny_data, out=tmp_path / "sampled", threads=1,
                                  max_steps=3))
    first = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert full["steps"] == 3 and first[0]["type"] == "step"
    steps = lambda run: [json.loads(line)["loss"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
                         if json.loads(line)["type"] == "step"]
    assert steps("full") != steps("sampled") and sampled["steps"] == 3  # another loss: the setting is used
    keras = build_language_model(resolve("bilstm", ["hidden_size=8", "embedding_dim=8", "classifier.init=keras",
                                                    "classifier.embedding_std=1.0", "pretrain.output_dropout=0.25"]), 50)
    assert float(keras.embedding.weight.detach().abs().max()) <= 0.05  # Keras' uniform(-0.05, 0.05), not N(0, 1)
    assert keras.output_dropout.p == 0.25
