"""The classifier every architecture shares: embedding (zoo.models.frontend) -> encoder -> pooling over valid
steps -> head -> logits."""

from __future__ import annotations

import torch
from torch import nn

from zoo.config.sections import RunConfig
from zoo.models.frontend import TokenModel, keras_init
from zoo.plugin_api.sequences import step_mask


class Pooling(nn.Module):
    """Pools encoder outputs over each review's valid steps: any of max, mean and last, concatenated."""

    def __init__(self, kinds: str, bidirectional: bool):
        super().__init__()
        self.kinds = kinds.split("+")
        self.bidirectional = bidirectional

    def output_size(self, features: int) -> int:
        return features * len(self.kinds)

    def forward(self, outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = step_mask(lengths, outputs.shape[1])
        pooled = []
        for kind in self.kinds:
            if kind == "max":
                pooled.append(outputs.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(dim=1))
            elif kind == "mean":
                pooled.append(outputs.sum(dim=1) / lengths.unsqueeze(-1).to(outputs.dtype))
            else:
                pooled.append(self._last(outputs, lengths))
        return torch.cat(pooled, dim=-1)

    def _last(self, outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
        last = outputs.gather(1, index).squeeze(1)
        if not self.bidirectional:
            return last
        half = outputs.shape[-1] // 2  # the backward direction ends at step 0
        return torch.cat([last[:, :half], outputs[:, 0, half:]], dim=-1)


def logit_count(num_classes: int) -> int:
    """Two classes get one logit (the second class's, as IMDB's `pos`); K > 2 classes get K."""
    return 1 if num_classes == 2 else num_classes


class Classifier(TokenModel):
    """A text classifier around any plugin's encoder: logits [B] for two classes, [B, K] for K > 2."""

    def __init__(self, encoder: nn.Module, vocab_size: int, config: RunConfig, num_classes: int = 2):
        c = config.classifier
        super().__init__(vocab_size, c)
        self.num_classes = num_classes
        outputs = logit_count(num_classes)
        self.encoder = encoder
        self.pooling = Pooling(c.pooling, bool(getattr(encoder, "bidirectional", False)))
        pooled = self.pooling.output_size(encoder.output_size)
        if c.head_hidden:
            self.head = nn.Sequential(
                nn.Linear(pooled, c.head_hidden), nn.ReLU(), nn.Dropout(c.head_dropout), nn.Linear(c.head_hidden, outputs)
            )
        else:
            self.head = nn.Sequential(nn.Dropout(c.head_dropout), nn.Linear(pooled, outputs))
        if c.init == "keras":
            keras_init(self)
        else:
            self.init_embedding(c.embedding_std)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor,
                perturbation: torch.Tensor | None = None) -> torch.Tensor:
        """Logits; `perturbation` ([B, T, embedding_dim]) is added to the embeddings (adversarial training)."""
        outputs = self.encoder(self.embed(input_ids, perturbation), lengths)
        logits = self.head(self.pooling(outputs, lengths))
        return logits.squeeze(-1) if self.num_classes == 2 else logits
