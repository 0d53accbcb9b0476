"""What every model of the zoo reads text with: the token embedding (pad id 0), embedding dropout and word
dropout, and their initialization. The classifier and the language model both stand on it, so the weights a
language model learns move over to a classifier by name (`embedding.weight`)."""

from __future__ import annotations

import torch
from torch import nn

from zoo.config.sections import ClassifierConfig
from zoo.data.tokenizer import PAD_ID


class TokenModel(nn.Module):
    """A model that embeds token ids: `embedding`, `embedding_dropout` and `word_dropout`, from the config's
    classifier section (its embedding settings are shared with the language model)."""

    def __init__(self, vocab_size: int, c: ClassifierConfig):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, c.embedding_dim, padding_idx=PAD_ID)
        self.embedding_dropout = nn.Dropout(c.embedding_dropout)
        self.word_dropout = c.word_dropout

    def embed(self, input_ids: torch.Tensor, perturbation: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, E] embeddings, `perturbation` added (adversarial training), then both dropouts (training only)."""
        x = self.embedding(input_ids)
        if perturbation is not None:
            x = x + perturbation
        x = self.embedding_dropout(x)
        if self.training and self.word_dropout:
            # Whole words go missing (no rescaling: a dropped word reads like the padding embedding, zero).
            kept = torch.rand(input_ids.shape, device=x.device) >= self.word_dropout
            x = x * kept.unsqueeze(-1).to(x.dtype)
        return x

    @torch.no_grad()
    def init_embedding(self, std: float) -> None:
        """Embeddings from N(0, std^2), the padding row zero (std 1.0 is PyTorch's own init: nothing to do)."""
        if std != 1.0:
            nn.init.normal_(self.embedding.weight, std=std)
            self.embedding.weight[PAD_ID].zero_()


@torch.no_grad()
def keras_init(model: nn.Module) -> None:
    """Keras' default initializers, which the seed tutorial trained with.

    Embedding uniform(-0.05, 0.05); Dense glorot-uniform kernels, zero biases;
    LSTM / GRU glorot-uniform input kernels, orthogonal recurrent kernels, zero
    biases except LSTM forget gates at 1 (unit_forget_bias). Modules other than
    nn.Embedding, nn.Linear, nn.LSTM and nn.GRU keep their own initialization.
    """
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            nn.init.uniform_(module.weight, -0.05, 0.05)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LSTM, nn.GRU)):
            for name, param in module.named_parameters():
                if name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(param)
                elif name.startswith("weight_hh"):
                    nn.init.orthogonal_(param)
                else:
                    nn.init.zeros_(param)
                    if isinstance(module, nn.LSTM) and name.startswith("bias_ih"):
                        hidden = module.hidden_size
                        param[hidden:2 * hidden] = 1.0  # PyTorch's gate order: i, f, g, o
