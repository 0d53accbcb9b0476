"""ONNX export benchmark: onnxruntime vs PyTorch eager throughput per architecture, and test-accuracy parity.

Throughput: reviews/s on real test reviews at batch 1 and batch 64
(length-bucketed batches), both engines on the same inputs and thread count,
for each built-in at its recipe's size (weights do not change the speed). The
median of --repeats runs is printed, with the ratio onnxruntime / torch.

Parity (--run RUN): the trained run's accuracy on the full test split from
PyTorch and from its exports (exported first if missing): model.onnx (fp32),
model-text.onnx (--with-tokenizer, fed the raw review texts) and
model.int8.onnx (--quantize int8), with the seconds each takes.

    python bench/export_onnx.py [--run runs/bench/bilstm-...] [--threads 2] [--reviews 512] [--variants fp32,text,int8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from zoo.config.sections import TokenizerConfig
from zoo.data.batching import evaluation_batches, pad_rows
from zoo.data.encoding import encode_splits
from zoo.data.splits import load_splits
from zoo.data.tokenizer import tokenizer_for
from zoo.exporters.onnx.classifier import build_onnx, encoder_lowering
from zoo.exporters.onnx.scan import lower_cell_encoder
from zoo.inference.runtime import open_session
from zoo.models.build import build_classifier
from zoo.registry.discovery import architectures
from zoo.registry.resolve import resolve

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "imdb"


def reviews_per_second(run_batch, batches, repeats: int) -> float:
    count = sum(len(b[1]) for b in batches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for ids, lengths in batches:
            run_batch(ids, lengths)
        times.append(time.perf_counter() - start)
    return count / statistics.median(times)


def throughput(args, test) -> None:
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(test), size=args.reviews, replace=False)
    rows = [test.ids(int(i)).astype(np.int64) for i in chosen]
    lengths = np.array([len(r) for r in rows])
    by_size = {
        1: [pad_rows([rows[i]]) for i in range(min(len(rows), args.reviews // 4))],
        64: [pad_rows([rows[i] for i in b]) for b in evaluation_batches(lengths, 64)],
    }
    print(f"{'recipe':<15} {'batch':>5} {'torch rev/s':>12} {'ort rev/s':>10} {'ratio':>6}")
    # "peephole (Scan)": the same peephole model through the generic cell lowering instead of ONNX's LSTM op
    for label, recipe in (("classic", "classic"), ("peephole", "peephole"), ("peephole (Scan)", "peephole"),
                          ("gru", "gru"), ("bilstm", "bilstm")):
        config = resolve(recipe)
        torch.manual_seed(0)
        model = build_classifier(config, 8192).eval()
        lower = encoder_lowering(architectures().get(config.architecture), model.encoder)
        with tempfile.TemporaryDirectory() as tmp:
            build_onnx(model, lower_cell_encoder if "Scan" in label else lower, 17, {}, Path(tmp) / "m.onnx")
            session = open_session(Path(tmp) / "m.onnx", args.threads)

            def run_torch(ids, lens):
                with torch.no_grad():
                    model(torch.from_numpy(ids), torch.from_numpy(lens))

            def run_ort(ids, lens):
                session.run(["logits"], {"input_ids": ids, "lengths": lens})

            for size, batches in by_size.items():
                batches = batches[:32] if recipe == "peephole" and size == 1 else batches
                t = reviews_per_second(run_torch, batches, args.repeats)
                o = reviews_per_second(run_ort, batches, args.repeats)
                print(f"{label:<15} {size:>5} {t:>12,.1f} {o:>10,.1f} {o / t:>6.2f}", flush=True)


@torch.no_grad()
def thread_sweep(args, test) -> None:
    """Batch 1 at 1 and 2 threads for both engines: whether each one's per-review work runs in parallel."""
    rows = [test.ids(int(i)).astype(np.int64) for i in np.random.default_rng(0).choice(len(test), 64, replace=False)]
    batches = [pad_rows([r]) for r in rows]
    print(f"{'recipe':<10} {'threads':>7} {'torch rev/s':>12} {'ort rev/s':>10} {'ratio':>6}")
    for recipe in ("classic", "gru", "bilstm"):
        config = resolve(recipe)
        torch.manual_seed(0)
        model = build_classifier(config, 8192).eval()
        with tempfile.TemporaryDirectory() as tmp:
            build_onnx(model, encoder_lowering(architectures().get(config.architecture), model.encoder), 17, {},
                       Path(tmp) / "m.onnx")
            for threads in (1, 2):
                torch.set_num_threads(threads)
                session = open_session(Path(tmp) / "m.onnx", threads)
                t = reviews_per_second(lambda i, n: model(torch.from_numpy(i), torch.from_numpy(n)), batches, args.repeats)
                o = reviews_per_second(lambda i, n: session.run(["logits"], {"input_ids": i, "lengths": n}), batches, args.repeats)
                print(f"{recipe:<10} {threads:>7} {t:>12,.1f} {o:>10,.1f} {o / t:>6.2f}", flush=True)
    torch.set_num_threads(args.threads)


VARIANTS = {"fp32": {}, "text": {"with_tokenizer": True}, "int8": {"quantize": "int8"}}


def parity(run_path: Path, data: str, variants: list[str], threads: int) -> None:
    """Full test split: accuracy of PyTorch and of each export variant, differences, and seconds taken."""
    from zoo.exporters.onnx.export import default_output, export_onnx
    from zoo.inference.logits import split_logits
    from zoo.inference.metrics import classification_metrics
    from zoo.inference.runtime import OnnxClassifier
    from zoo.runs.loaders import open_run, run_classifier, run_tokenizer

    run, record = open_run(run_path)
    tokenizer = run_tokenizer(run, record)
    splits = load_splits(data)
    test = encode_splits(splits, tokenizer, names=["test"])["test"]
    classes = record.classes
    start = time.perf_counter()
    reference = split_logits(run_classifier(run, record, tokenizer), test)
    print(f"torch: test accuracy {100 * classification_metrics(reference, test.labels, classes)['accuracy']:.3f}% "
          f"in {time.perf_counter() - start:.1f} s")
    for variant in variants:
        options = VARIANTS[variant]
        path = default_output(run, options.get("with_tokenizer", False), options.get("quantize"))
        if not path.exists():
            report = export_onnx(run.path, data=data, threads=threads, **options)
            print(f"export {variant}:", {k: v for k, v in report.items() if k not in ("worst", "path")})
        runtime = OnnxClassifier(path, threads=threads)
        start = time.perf_counter()
        if runtime.takes_text:
            logits = runtime.logits(list(splits.test["text"]))
        else:
            logits = runtime.logits_from_ids([test.ids(i).astype(np.int64) for i in range(len(test))])
        seconds = time.perf_counter() - start
        a = classification_metrics(reference, test.labels, classes)["accuracy"]
        b = classification_metrics(logits, test.labels, classes)["accuracy"]
        print(f"{variant}: test accuracy torch {100 * a:.3f}%, onnxruntime {100 * b:.3f}%, difference "
              f"{100 * (b - a):+.3f} points; max |logit diff| {np.abs(reference - logits).max():.2e}; predictions that "
              f"differ: {int(((reference > 0) != (logits > 0)).sum())}; {seconds:.1f} s for the test split", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reviews", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--thread-sweep", action="store_true", help="batch 1 at 1 and 2 threads, both engines")
    parser.add_argument("--variants", default="fp32,text,int8", help="exports to compare on the test split (with --run)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_throughput:
        splits = load_splits(args.data)
        test = encode_splits(splits, tokenizer_for(splits, TokenizerConfig()), names=["test"])["test"]
        throughput(args, test)
    if args.thread_sweep:
        splits = load_splits(args.data)
        thread_sweep(args, encode_splits(splits, tokenizer_for(splits, TokenizerConfig()), names=["test"])["test"])
    if args.run:
        parity(args.run, args.data, args.variants.split(","), args.threads)


if __name__ == "__main__":
    main()
