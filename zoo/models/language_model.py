"""Any encoder as a language model: what `zoo pretrain` trains and `zoo train --init-from` starts from.

The model is the classifier's front (the same `embedding` and `encoder`, so
their weights move over by name) with a next-token head: the encoder's forward
outputs at step t predict token t + 1. A bidirectional encoder is two language
models in one pass: its backward half at step t (which has read t .. end)
predicts token t - 1. The output layer is tied to the embedding (each
direction's outputs are projected to the embedding size, then scored against
every embedding row) with a bias per token.

The softmax over the vocabulary costs more than the recurrent encoder on a CPU,
so training uses a sampled softmax by default (`pretrain.softmax = "sampled"`):
each batch draws `samples` shared negative tokens from the unigram distribution
raised to 0.75, and every position scores its true token against them (logits
corrected by the log expected count, draws that hit the true token masked).
`pretrain.softmax = "full"` trains on the exact softmax, the baseline the
sampled one is measured against. Validation always reports the full softmax's
loss (exact perplexity).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.config.sections import RunConfig
from zoo.data.encoding import EncodedSplit
from zoo.data.tokenizer import PAD_ID
from zoo.models.frontend import TokenModel, keras_init
from zoo.plugin_api.sequences import step_mask


class LanguageModel(TokenModel):
    def __init__(self, encoder: nn.Module, vocab_size: int, config: RunConfig):
        c = config.classifier
        super().__init__(vocab_size, c)
        if c.init == "torch":
            self.init_embedding(c.embedding_std)  # before the heads: the order the random draws have always had
        self.encoder = encoder
        self.bidirectional = bool(getattr(encoder, "bidirectional", False))
        self.output_dropout = nn.Dropout(config.pretrain.output_dropout)
        half = encoder.output_size // 2 if self.bidirectional else encoder.output_size
        self.forward_head = nn.Linear(half, c.embedding_dim)
        self.backward_head = nn.Linear(half, c.embedding_dim) if self.bidirectional else None
        self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        if c.init == "keras":
            keras_init(self)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(features [N, E], target ids [N]) for each direction, over every position that has a target."""
        outputs = self.output_dropout(self.encoder(self.embed(input_ids), lengths))
        steps = input_ids.shape[1]
        half = outputs.shape[-1] // 2 if self.bidirectional else outputs.shape[-1]
        has_next = step_mask(lengths - 1, steps)
        directions = [(self.forward_head(outputs[..., :half][has_next]), F.pad(input_ids[:, 1:], (0, 1))[has_next])]
        if self.bidirectional:
            has_previous = step_mask(lengths, steps)
            has_previous[:, 0] = False
            directions.append((self.backward_head(outputs[..., half:][has_previous]),
                               F.pad(input_ids[:, :-1], (1, 0))[has_previous]))
        return directions

    def full_loss(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Summed cross-entropy of the softmax over the whole vocabulary."""
        logits = features @ self.embedding.weight.T + self.output_bias
        return F.cross_entropy(logits.float(), targets, reduction="sum")


class SampledSoftmax:
    """Negatives drawn from unigram counts ** 0.75 (padding never), shared by every position of a batch.

    `samples` draws with replacement, kept once each; a token's logit is corrected by the log of its chance to be
    among the draws, 1 - (1 - p) ** samples, and a draw equal to a position's true token is masked there.
    """

    def __init__(self, counts: np.ndarray, samples: int, device: str):
        weights = torch.from_numpy(counts.astype(np.float64)) ** 0.75
        weights[PAD_ID] = 0.0
        probabilities = weights / weights.sum()
        self.probabilities = probabilities.to(device, torch.float32)
        inclusion = -torch.expm1(samples * torch.log1p(-probabilities))  # 1 - (1 - p) ** samples, accurately
        self.log_inclusion = torch.log(inclusion.clamp_min(1e-30)).to(device, torch.float32)
        self.samples = samples

    def loss(self, model: LanguageModel, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Summed sampled-softmax loss of the true tokens against the shared draws."""
        drawn = torch.multinomial(self.probabilities, self.samples, replacement=True).unique()
        weight, bias = model.embedding.weight, model.output_bias
        true = (features * weight[targets]).sum(-1) + bias[targets] - self.log_inclusion[targets]
        sampled = torch.addmm(bias[drawn] - self.log_inclusion[drawn], features, weight[drawn].T)
        column = torch.full_like(self.probabilities, -1, dtype=torch.long)
        column[drawn] = torch.arange(len(drawn), device=drawn.device)
        hit_column = column[targets]
        hits = (hit_column >= 0).nonzero().squeeze(1)
        sampled = sampled.index_put((hits, hit_column[hits]), torch.tensor(float("-inf"), device=sampled.device))
        return (torch.logaddexp(true, torch.logsumexp(sampled, dim=1)) - true).sum()


class FullSoftmax:
    """The exact softmax over the whole vocabulary (`pretrain.softmax = "full"`), as SampledSoftmax is called."""

    def loss(self, model: LanguageModel, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return model.full_loss(features, targets)


def token_counts(split: EncodedSplit, vocab_size: int) -> np.ndarray:
    return np.bincount(split.tokens, minlength=vocab_size).astype(np.int64)


@torch.no_grad()
def verify_causal(model: LanguageModel, origin: str) -> None:
    """Refuse an encoder whose forward outputs at step t see later tokens (or backward outputs earlier ones).

    A language model trained on such an encoder would learn to copy the answer. A multi-layer bidirectional
    stack that feeds both directions into each layer is the usual case.
    """
    from zoo.errors import PluginError

    was_training = model.training
    model.eval()
    try:
        generator = torch.Generator().manual_seed(0)
        size = model.embedding.embedding_dim
        x = torch.randn(2, 10, size, generator=generator)
        lengths = torch.tensor([10, 7])
        cut = 5
        out = model.encoder(x, lengths)
        half = out.shape[-1] // 2 if model.bidirectional else out.shape[-1]
        later = x.clone()
        later[:, cut:] = torch.randn(2, 10 - cut, size, generator=generator)
        leaks = not torch.allclose(out[:, :cut, :half], model.encoder(later, lengths)[:, :cut, :half], atol=1e-5)
        if model.bidirectional:
            earlier = x.clone()
            earlier[:, :cut] = torch.randn(2, cut, size, generator=generator)
            leaks |= not torch.allclose(out[:, cut:, half:], model.encoder(earlier, lengths)[:, cut:, half:], atol=1e-5)
    finally:
        model.train(was_training)
    if leaks:
        raise PluginError(
            f"{origin} cannot be pretrained as a language model: its forward outputs at a step depend on later "
            "tokens (or its backward outputs on earlier ones), so predicting the next token would be copying it. "
            "A stacked bidirectional encoder mixes both directions between layers: pretrain it with "
            "--set encoder.num_layers=1, or pretrain a unidirectional architecture")


def perplexity(loss_per_token: float) -> float:
    return math.exp(min(loss_per_token, 700.0))
