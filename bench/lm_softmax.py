"""The language model's output layer on a CPU: full softmax against the sampled softmax, side by side.

Real IMDB chunks (the bilstm-lm recipe's tokenizer, chunking and batches), the
same batches for every variant, interleaved round by round so that a noisy
machine slows them alike; prints ms per training step (forward, backward,
AdamW), tokens/s and the ratio to the full softmax, medians over the rounds.

    python bench/lm_softmax.py --data ../shared/datasets/imdb --threads 2 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "imdb"))
    parser.add_argument("--recipe", default="bilstm-lm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, nargs="+", default=[512, 1024, 2048])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from zoo.data.batching import BucketBatchSampler, collate
    from zoo.data.encoding import chunk_texts, encode_splits
    from zoo.data.splits import load_splits
    from zoo.data.tokenizer import tokenizer_for
    from zoo.models.build import build_language_model
    from zoo.models.language_model import SampledSoftmax, token_counts
    from zoo.registry.resolve import resolve
    from zoo.training.optimizer import make_optimizer

    config = resolve(args.recipe)
    splits = load_splits(args.data, with_unsupervised=True)
    tokenizer = tokenizer_for(splits, config.tokenizer)
    encoded = encode_splits(splits, tokenizer, ("train", "unsupervised"))
    texts = chunk_texts([encoded["train"], encoded["unsupervised"]], config.pretrain.chunk_tokens)
    counts = token_counts(texts, tokenizer.vocab_size)
    sampler = BucketBatchSampler(texts.lengths, config.train.batch_size, config.train.max_batch_tokens, 0)
    batches = [collate(texts, b) for b in sampler.epoch_batches(0)[: args.rounds + 1]]

    variants = {"full": None} | {f"sampled {n}": SampledSoftmax(counts, n, "cpu") for n in args.samples}
    models = {}
    for name in variants:
        torch.manual_seed(0)
        model = build_language_model(config, tokenizer.vocab_size)
        models[name] = (model, make_optimizer(model, config.train))
    times: dict[str, list[float]] = {name: [] for name in variants}
    tokens = []
    for round_index, (ids, lengths, _) in enumerate(batches):
        ids, lengths = torch.from_numpy(ids), torch.from_numpy(lengths)
        for name, sampled in variants.items():
            model, optimizer = models[name]
            started = time.perf_counter()
            directions = model(ids, lengths)
            loss = sum(model.full_loss(f, t) if sampled is None else sampled.loss(model, f, t) for f, t in directions)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if round_index:  # the first round warms up
                times[name].append(time.perf_counter() - started)
        if round_index:
            tokens.append(int(lengths.sum()))
    per_step = statistics.median(tokens)
    full = statistics.median(times["full"])
    print(f"{args.recipe}, {args.threads} threads, {args.rounds} rounds, median batch {per_step:,.0f} tokens")
    print("| output layer | ms / step | tokens / s | speed vs full |")
    print("| --- | --- | --- | --- |")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {1000 * median:,.0f} | {per_step / median:,.0f} | {full / median:.2f}x |")


if __name__ == "__main__":
    main()
