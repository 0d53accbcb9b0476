"""The classifier every architecture shares: Embedding -> encoder -> pooling -> head -> logit."""

from __future__ import annotations

import math
import sys
from contextlib import redirect_stdout

import torch
from torch import nn

from zoo.config import RunConfig

PAD_ID = 0
MAX_PARAMETERS = 2**31  # 8 GiB of float32 weights (and three times that more for Adam): no recurrent classifier
# needs it, and a mistyped size should be an error before any memory is taken
PARAMETER_SETTINGS = {"embedding": "tokenizer.vocab_size x classifier.embedding_dim", "head": "classifier.head_hidden",
                      "forward_head": "classifier.embedding_dim", "backward_head": "classifier.embedding_dim",
                      "output_bias": "tokenizer.vocab_size"}


class Pooling(nn.Module):
    """Pools encoder outputs over each review's valid steps: any of max, mean and last, concatenated."""

    def __init__(self, kinds: str, bidirectional: bool):
        super().__init__()
        self.kinds = kinds.split("+")
        self.bidirectional = bidirectional

    def output_size(self, features: int) -> int:
        return features * len(self.kinds)

    def forward(self, outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = outputs.shape[1]
        valid = torch.arange(steps, device=outputs.device)[None, :] < lengths[:, None]
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


class Classifier(nn.Module):
    """A text classifier around any plugin's encoder: logits [B] for two classes, [B, K] for K > 2."""

    def __init__(self, encoder: nn.Module, vocab_size: int, config: RunConfig, num_classes: int = 2):
        super().__init__()
        c = config.classifier
        self.num_classes = num_classes
        outputs = logit_count(num_classes)
        self.embedding = nn.Embedding(vocab_size, c.embedding_dim, padding_idx=PAD_ID)
        self.embedding_dropout = nn.Dropout(c.embedding_dropout)
        self.word_dropout = c.word_dropout
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
        elif c.embedding_std != 1.0:
            with torch.no_grad():
                nn.init.normal_(self.embedding.weight, std=c.embedding_std)
                self.embedding.weight[PAD_ID].zero_()

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor,
                perturbation: torch.Tensor | None = None) -> torch.Tensor:
        """Logits; `perturbation` ([B, T, embedding_dim]) is added to the embeddings (adversarial training)."""
        x = self.embedding(input_ids)
        if perturbation is not None:
            x = x + perturbation
        x = self.embedding_dropout(x)
        if self.training and self.word_dropout:
            # Whole words go missing (no rescaling: a dropped word reads like the padding embedding, zero).
            kept = torch.rand(input_ids.shape, device=x.device) >= self.word_dropout
            x = x * kept.unsqueeze(-1).to(x.dtype)
        outputs = self.encoder(x, lengths)
        logits = self.head(self.pooling(outputs, lengths))
        return logits.squeeze(-1) if self.num_classes == 2 else logits


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


def build_classifier(config: RunConfig, vocab_size: int, num_classes: int = 2) -> Classifier:
    """Build the plugin's encoder and wrap it in the shared classifier (its size checked first)."""
    check_size(lambda: Classifier(build_encoder(config), vocab_size, config, num_classes), config)
    return Classifier(build_encoder(config), vocab_size, config, num_classes)


def check_size(build, config: RunConfig) -> None:
    """Refuse a model over MAX_PARAMETERS before allocating it: `build()` runs on the meta device (shapes, no
    memory), and the error names the largest tensors and the settings behind them."""
    from zoo.errors import ConfigError

    try:
        with torch.device("meta"), redirect_stdout(sys.stderr):
            shapes = {name: tuple(p.shape) for name, p in build().named_parameters()}
    except Exception:  # a plugin that cannot build on the meta device: the real build reports its own errors
        return
    total = sum(math.prod(shape) for shape in shapes.values())
    if total <= MAX_PARAMETERS:
        return
    sizes = ", ".join(f"encoder.{k} = {v}" for k, v in vars(config.encoder).items()
                      if isinstance(v, int) and not isinstance(v, bool))
    settings = PARAMETER_SETTINGS | {"encoder": sizes or "the encoder's settings"}
    largest = sorted(shapes.items(), key=lambda item: -math.prod(item[1]))[:3]
    named = "; ".join(f"{name} {list(shape)} ({settings.get(name.split('.')[0], 'its settings')})"
                      for name, shape in largest)
    raise ConfigError(f"the model would have {total:,} parameters ({4 * total / 2**30:,.1f} GiB of float32 weights), "
                      f"over the zoo's limit of {MAX_PARAMETERS:,}; the largest: {named}. Choose smaller sizes")


def build_encoder(config: RunConfig) -> nn.Module:
    """The architecture's encoder for this config, checked for the contract's `output_size`."""
    from zoo.errors import PluginError
    from zoo.registry import architectures

    arch = architectures().get(config.architecture)
    where = origin(config.architecture)
    try:
        with redirect_stdout(sys.stderr):  # a chatty plugin must not corrupt --json output
            encoder = arch.build(config.encoder, config.classifier.embedding_dim)
    except Exception as exc:
        raise PluginError(f"{where}: build() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(encoder, nn.Module) or not isinstance(getattr(encoder, "output_size", None), int):
        raise PluginError(f"{where} breaks the plugin contract: build() must return an nn.Module with an int `output_size`")
    return encoder


def origin(architecture: str) -> str:
    """The words "architecture NAME from DISTRIBUTION", for errors that blame a plugin."""
    from zoo.registry import architectures

    return f"architecture {architecture!r} from {architectures().describe(architecture).distribution}"


@torch.no_grad()
def verify_encoder(model: Classifier, ids: torch.Tensor, lengths: torch.Tensor, config: RunConfig) -> None:
    """Check the encoder's output on one real batch (eval mode): [B, T, output_size] and finite, or a PluginError.

    Run once before training, so that a broken plugin is named at its first batch, not as a shape error
    deep inside pooling or as a NaN loss hundreds of steps later.
    """
    from zoo.errors import PluginError

    was_training = model.training
    model.eval()
    try:
        x = model.embedding(ids)
        try:
            outputs = model.encoder(x, lengths)
        except Exception as exc:
            raise PluginError(f"{origin(config.architecture)}: its encoder failed on the first batch "
                              f"(input {list(x.shape)}): {type(exc).__name__}: {exc}") from exc
        expected = [ids.shape[0], ids.shape[1], model.encoder.output_size]
        if not isinstance(outputs, torch.Tensor) or list(outputs.shape) != expected:
            got = list(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
            raise PluginError(f"{origin(config.architecture)} breaks the plugin contract: its encoder returned "
                              f"{got} for input {list(x.shape)}; expected [batch, steps, output_size] = {expected}")
        if not bool(torch.isfinite(outputs).all()):
            raise PluginError(f"{origin(config.architecture)} breaks the plugin contract: its encoder returned "
                              "non-finite values (nan or inf) on the first batch")
    finally:
        model.train(was_training)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
