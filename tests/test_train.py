"""The trainer, evaluate and predict on tiny data: artifacts, learning, exact resume, bad input."""

import json
import os
import pickle
import signal

import conftest
import numpy as np
import pytest
import torch
from conftest import run_zoo

from zoo.errors import CheckpointError, ConfigError
from zoo.models.build import build_classifier
from zoo.registry.resolve import resolve
from zoo.training.classify import adversarial_perturbation, train
from zoo.training.job import RunRequest
from zoo.training.session import Interrupted

TINY = conftest.TINY + ["train.epochs=4", "train.checkpoint_every=5", "train.log_every=3", "train.patience=0"]
TIMES = {"train_seconds", "tokens_per_second"}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    yield from conftest.tiny_hub_data(tmp_path_factory, train=240, test=120)


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    summary = train(RunRequest(resolve("bilstm", TINY), data=tiny_data, out=out, threads=1))
    return out, summary


def without_times(records):
    return [{k: v for k, v in r.items() if k not in TIMES} for r in records]


def test_run_directory_and_summary(tiny_run):
    out, summary = tiny_run
    for name in ("config.json", "tokenizer.model", "model.pt", "last.pt", "metrics.jsonl", "curves.png", "README.md"):
        assert (out / name).is_file(), name
    assert summary["test_accuracy"] > 0.8 and summary["best_validation_accuracy"] > 0.8  # tiny data is easy
    assert summary["epochs"] == 4 and summary["tokens_per_second"] > 0
    info = json.loads((out / "config.json").read_text())
    assert info["config"]["encoder"]["hidden_size"] == 8 and info["seed"] == 0 and "torch" in info["versions"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2, 3, 4]
    assert records[-1]["type"] == "test" and records[-1]["count"] == 120
    assert "test accuracy" in (out / "README.md").read_text()


class Killed(BaseException):
    """Like SIGKILL: nothing gets to save."""


def kill_then_resume(request: RunRequest, step: int) -> dict:
    """Run `request` until it is killed at `step`, then resume it to the end; the resumed run's summary."""

    def kill_at(current):
        if current == step:
            raise Killed

    with pytest.raises(Killed):
        train(request, step_callback=kill_at)
    return train(RunRequest(None, resume=request.out, threads=1))


def metric_records(out):
    return without_times(json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines())


def test_killed_run_resumes_to_identical_metrics(tiny_data, tiny_run, tmp_path):
    out = tmp_path / "killed"
    summary = kill_then_resume(RunRequest(resolve("bilstm", TINY), data=tiny_data, out=out, threads=1), step=23)
    reference_out, reference = tiny_run
    assert summary["test_accuracy"] == reference["test_accuracy"]
    assert summary["best_validation_accuracy"] == reference["best_validation_accuracy"]
    assert metric_records(out) == metric_records(reference_out)
    a, b = torch.load(out / "model.pt", weights_only=True), torch.load(reference_out / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_keeps_the_step_budget(tiny_data, tmp_path):
    """--max-steps shapes the LR schedule, so a resumed run must keep the original budget."""
    config = resolve("bilstm", TINY + ["train.schedule=cosine"])
    reference = train(RunRequest(config, data=tiny_data, out=tmp_path / "whole", threads=1, max_steps=19))
    cut = RunRequest(config, data=tiny_data, out=tmp_path / "cut", threads=1, max_steps=19)
    resumed = kill_then_resume(cut, step=12)
    assert resumed["steps"] == 19 and resumed["test_accuracy"] == reference["test_accuracy"]
    assert metric_records(tmp_path / "cut") == metric_records(tmp_path / "whole")


def test_weight_average_is_what_gets_kept_and_resumes_exactly(tiny_data, tmp_path):
    config = resolve("bilstm", TINY + ["train.ema_decay=0.9"])
    reference = train(RunRequest(config, data=tiny_data, out=tmp_path / "whole", threads=1))
    resumed = kill_then_resume(RunRequest(config, data=tiny_data, out=tmp_path / "cut", threads=1), step=23)
    assert resumed["test_accuracy"] == reference["test_accuracy"]
    assert metric_records(tmp_path / "cut") == metric_records(tmp_path / "whole")
    last = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    average = {k.removeprefix("module."): v for k, v in last["average"].items() if k.startswith("module.")}
    assert last["average"]["n_averaged"] == resumed["steps"]
    assert average.keys() == last["model"].keys()

    one_epoch = resolve("bilstm", TINY + ["train.ema_decay=0.9", "train.epochs=1"])
    train(RunRequest(one_epoch, data=tiny_data, out=tmp_path / "one", threads=1))
    last = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    best = torch.load(tmp_path / "one" / "model.pt", weights_only=True)  # its only epoch is the best
    assert all(torch.equal(best[k], last["average"]["module." + k]) for k in best)
    assert any(not torch.equal(best[k], last["model"][k]) for k in best)


def test_adversarial_perturbation_is_the_steepest_move_of_its_size():
    torch.manual_seed(0)
    model = build_classifier(resolve("bilstm", conftest.TINY), 80).eval()
    lengths = torch.tensor([12, 9, 6, 5])
    ids = torch.randint(1, 80, (4, 12)) * (torch.arange(12)[None, :] < lengths[:, None])  # 0: padding
    target = torch.tensor([0.0, 1.0, 1.0, 0.0])

    def losses(perturbation):
        return torch.nn.functional.binary_cross_entropy_with_logits(model(ids, lengths, perturbation), target,
                                                                    reduction="none")

    probe = torch.zeros(4, 12, 8, requires_grad=True)
    losses(probe).sum().backward()
    embedded = model.embedding(ids).detach()
    adversarial = adversarial_perturbation(embedded, probe.grad, lengths, 0.05)
    for row, n in enumerate(lengths.tolist()):
        assert float(adversarial[row, n:].abs().sum()) == 0.0  # nothing on padding
        assert float(adversarial[row].norm()) == pytest.approx(0.05 * float(embedded[row, :n].norm()), rel=1e-5)
        cosine = torch.nn.functional.cosine_similarity(adversarial[row].flatten(), probe.grad[row].flatten(), dim=0)
        assert float(cosine) == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        clean, attacked = losses(None), losses(adversarial)
        for _ in range(20):  # random moves of the same size on the same steps raise each review's loss less
            noise = adversarial_perturbation(embedded, torch.randn(4, 12, 8), lengths, 0.05)
            assert bool((losses(noise) - clean < attacked - clean).all())
    assert float(adversarial_perturbation(embedded, torch.zeros(4, 12, 8), lengths, 0.05).abs().sum()) == 0.0


def test_adversarial_training_changes_the_updates_and_resumes_exactly(tiny_data, tiny_run, tmp_path):
    config = resolve("bilstm", TINY + ["train.adversarial=0.05"])
    reference = train(RunRequest(config, data=tiny_data, out=tmp_path / "whole", threads=1))
    assert reference["test_accuracy"] > 0.8  # it still learns
    plain = [r["loss"] for r in metric_records(tiny_run[0]) if r["type"] == "step"]
    attacked = [r["loss"] for r in metric_records(tmp_path / "whole") if r["type"] == "step"]
    assert len(attacked) == len(plain) and attacked != plain  # the same batches, other updates
    resumed = kill_then_resume(RunRequest(config, data=tiny_data, out=tmp_path / "cut", threads=1), step=23)
    assert resumed["test_accuracy"] == reference["test_accuracy"]
    assert metric_records(tmp_path / "cut") == metric_records(tmp_path / "whole")


def test_ctrl_c_saves_a_checkpoint_and_resumes(tiny_data, tiny_run, tmp_path):
    out = tmp_path / "interrupted"

    def interrupt_at(step):
        if step == 17:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="zoo train --resume"):
        train(RunRequest(resolve("bilstm", TINY), data=tiny_data, out=out, threads=1), step_callback=interrupt_at)
    assert torch.load(out / "last.pt", weights_only=True)["progress"]["global_step"] == 17
    summary = train(RunRequest(None, resume=out, threads=1))
    assert summary["test_accuracy"] == tiny_run[1]["test_accuracy"]
    with pytest.raises(ConfigError, match="finished"):
        train(RunRequest(None, resume=out, threads=1))


def test_cli_train_evaluate_predict(tiny_data, tmp_path):
    out = tmp_path / "cli"
    args = [f"--set={s}" for s in TINY]
    result = run_zoo("train", "gru", "--data", tiny_data, "--out", str(out), "--epochs", "2", "--threads", "1",
                     *args, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) >= {"run_dir", "best_validation_accuracy", "test_accuracy", "epochs", "seconds", "tokens_per_second"}
    assert 0 <= summary["test_accuracy"] <= 1 and summary["epochs"] == 2

    evaluated = run_zoo("evaluate", str(out), "--split", "validation", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert metrics["accuracy"] == summary["best_validation_accuracy"]
    assert set(metrics) >= {"accuracy", "loss", "precision", "recall", "f1", "confusion"}

    texts = ["wonderful superb brilliant", "awful boring dull terrible", "", "   "]
    predicted = run_zoo("predict", str(out), *texts, "--json")
    assert predicted.returncode == 0, predicted.stderr
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["label"] for r in rows[:2]] == ["pos", "neg"]
    assert rows[2] == rows[3]  # empty and whitespace-only are the same empty review
    alone = [json.loads(run_zoo("predict", str(out), t, "--json").stdout) for t in texts[:2]]
    for one, batched in zip(alone, rows[:2]):  # the same answer alone or inside a batch (to float noise)
        assert one["label"] == batched["label"]
        assert all(abs(one["probabilities"][c] - batched["probabilities"][c]) <= 2e-6 for c in ("neg", "pos"))
    stdin = run_zoo("predict", str(out), stdin="wonderful superb\n\xff\xfe not utf8 \nawful dull\n")
    assert stdin.returncode == 0, stdin.stderr
    lines = stdin.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("pos\t") and lines[2].startswith("neg\t")
    huge = run_zoo("predict", str(out), "--json", stdin="wonderful " * 120_000 + "\n")  # a 1.2 MB review
    assert huge.returncode == 0, huge.stderr
    assert json.loads(huge.stdout)["label"] == "pos"


def test_cli_bad_settings_fail_before_any_work(tmp_path):
    for args in (["bilstm", "--set", "train.lr=fast"], ["bilstm", "--set", "nosuch=1"], ["transformer"], [],
                 ["bilstm", "--device", "tpu"]):
        result = run_zoo("train", *args, "--data", str(tmp_path / "no-such-data"))
        assert result.returncode != 0, args
        assert "Traceback" not in result.stderr and "does not exist" not in result.stderr, result.stderr
    assert "--device cuda" in run_zoo("train", "bilstm", "--device", "cuda").stderr or torch.cuda.is_available()


def test_bad_run_directories_are_clear_errors(tiny_run, tmp_path):
    import shutil

    out, _ = tiny_run
    missing = run_zoo("evaluate", str(tmp_path / "nope"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "model.pt").write_bytes(b"\x00garbage")
    result = run_zoo("predict", str(broken), "fine film")
    assert result.returncode != 0 and "not a readable checkpoint" in result.stderr and "Traceback" not in result.stderr
    (broken / "config.json").write_text("{not json")
    assert "corrupt" in run_zoo("predict", str(broken), "fine film").stderr


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-marker",))


def test_loading_a_checkpoint_never_executes_code(tiny_run, tmp_path, monkeypatch):
    import shutil

    from zoo.runs.loaders import load_classifier

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "evil"
    shutil.copytree(tiny_run[0], out)
    with open(out / "model.pt", "wb") as f:
        pickle.dump({"weights": Exploit()}, f)
    with pytest.raises(CheckpointError):
        load_classifier(out)
    assert not (tmp_path / "pwned-marker").exists()


def test_learning_rate_schedules():
    from zoo.config.sections import TrainConfig
    from zoo.training.optimizer import learning_rate

    cosine = TrainConfig(lr=1.0, schedule="cosine", warmup_fraction=0.1)
    rates = [learning_rate(s, 100, cosine) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0) and rates[-1] < 0.01
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert learning_rate(50, 100, TrainConfig(lr=0.5)) == 0.5
    assert np.isclose(learning_rate(55, 100, TrainConfig(lr=1.0, schedule="linear", warmup_fraction=0.1)), 0.5)


def test_a_checkpoint_from_before_the_shared_engine_resumes_where_it_stood():
    """last.pt files written by the separate loops kept the same facts under the tasks' own names."""
    from zoo.training.progress import Progress

    classifier = Progress.from_saved({"epoch": 2, "global_step": 40, "epoch_seen": 320, "epoch_correct": 300,
                                      "best_accuracy": 0.875, "best_epoch": 2, "bad_epochs": 0, "unknown": 1})
    assert (classifier.epoch_items, classifier.epoch_correct, classifier.best_score) == (320, 300, 0.875)
    language_model = Progress.from_saved({"global_step": 7, "epoch_predictions": 900, "best_loss": 4.5,
                                          "best_step": 5, "snapshots": 1})
    assert (language_model.epoch_items, language_model.best_score, language_model.best_step) == (900, -4.5, 5)


def test_small_data_gets_the_steps_it_needs_and_the_run_says_so(tiny_data, tmp_path):
    """216 training texts in batches of 16 are 14 steps an epoch: train.min_steps=40 makes 2 epochs 3, and
    patience 1 epoch of 2 becomes 2 of 3."""
    sets = [f"--set={s}" for s in TINY + ["train.epochs=2", "train.min_steps=40", "train.patience=1"]]
    result = run_zoo("train", "bilstm", "--data", tiny_data, "--out", str(tmp_path / "floor"), "--threads", "1",
                     "--json", *sets)
    assert result.returncode == 0, result.stderr
    assert "plan: 3 epochs of about 14 steps (train.min_steps=40 lengthens train.epochs=2 for 216" in result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["epochs"], summary["steps"]) == (3, 42)
    assert "it stops after 2 epoch(s) without a better validation score (train.patience=1, lengthened" in result.stderr
    plan = json.loads((tmp_path / "floor" / "config.json").read_text())["plan"]
    assert (plan["epochs"], plan["patience"]) == (3, 2)
    assert "Schedule: 3 epochs" in (tmp_path / "floor" / "README.md").read_text()
    exactly = run_zoo("train", "bilstm", "--data", tiny_data, "--out", str(tmp_path / "exact"), "--threads", "1",
                      "--json", "--epochs", "2", *sets)
    assert json.loads(exactly.stdout.splitlines()[-1])["epochs"] == 2  # --epochs means exactly that many


def test_a_run_that_looks_undertrained_or_overfit_says_which_setting_to_change():
    from zoo.runs.record import RunRecord
    from zoo.training.classify import fit_notes
    from zoo.training.progress import Progress

    record = RunRecord("train", resolve("bilstm", TINY), 0, None, {}, "", setup={"plan": {"steps": 500}})
    rising = [{"type": "epoch", "epoch": n, "complete": True, "best": True, "train_accuracy": 0.8,
               "validation_accuracy": 0.7 + n / 100} for n in (1, 2, 3)]
    notes = fit_notes(rising, Progress(epoch=3, best_epoch=3), record)
    assert len(notes) == 1 and "still improving" in notes[0] and "--set train.min_steps=1000" in notes[0]
    apart = [{**r, "best": r["epoch"] == 2, "train_accuracy": 0.99} for r in rising]
    notes = fit_notes(apart, Progress(epoch=3, best_epoch=2), record)
    assert len(notes) == 1 and "overfit" in notes[0] and "embedding_dropout=0.5" in notes[0]  # 0.2 above bilstm's
    assert "word_dropout=0.2" in notes[0] and "encoder.hidden_size=4" in notes[0]  # TINY's 8, halved
    assert fit_notes([{**r, "train_accuracy": r["validation_accuracy"] + 0.02} for r in apart],
                     Progress(epoch=3, best_epoch=2, stopped_early=True), record) == []


def test_a_small_set_of_short_texts_takes_the_recipes_small_data_settings_unless_set(tiny_data, tmp_path):
    """The tiny fixtures are 216 training texts of about 25 words: gru takes its small_data dropout; a --set wins."""
    sets = [f"--set={s}" for s in TINY + ["train.epochs=1"]]
    result = run_zoo("train", "gru", "--data", tiny_data, "--out", str(tmp_path / "small"), "--threads", "1",
                     "--set=classifier.word_dropout=0.05", *sets)
    assert result.returncode == 0, result.stderr
    assert "fit: 216 training texts" in result.stderr and "small_data settings apply: " \
        "classifier.embedding_dropout=0.5 (--set" in result.stderr
    record = json.loads((tmp_path / "small" / "config.json").read_text())
    assert record["config"]["classifier"]["embedding_dropout"] == 0.5
    assert record["config"]["classifier"]["word_dropout"] == 0.05  # the user's
    assert record["fit"]["small_data"] is True and record["fit"]["training_texts"] == 216
    assert "the run took the recipe's settings" in (tmp_path / "small" / "README.md").read_text()


def test_long_or_many_texts_keep_the_usual_settings_and_a_decision_is_made_once():
    from zoo.runs.record import RunRecord
    from zoo.training.fit import fit_to_texts

    def record():
        return RunRecord("train", resolve("gru", TINY), 0, None, {}, "",
                         setup={"fit": {"small_data_settings": {"classifier.embedding_dropout": 0.5}}})

    long = record()
    assert "usual settings" in fit_to_texts(long, ["word " * 80] * 100)
    assert long.config.classifier.embedding_dropout == 0.3 and long.setup["fit"]["small_data"] is False
    many = record()
    fit_to_texts(many, ["a short text"] * 20_000)
    assert many.config.classifier.embedding_dropout == 0.3
    short = record()
    fit_to_texts(short, ["a short text"] * 100)
    assert short.config.classifier.embedding_dropout == 0.5
    assert fit_to_texts(short, ["word " * 80] * 100) is None  # decided: a resumed run keeps it
    assert short.config.classifier.embedding_dropout == 0.5
