"""Building models from a run's config: the plugin's encoder (checked against the contract on a real batch), the
classifier or the language model around it, and a size check before any memory is taken."""

from __future__ import annotations

import math
import sys
from contextlib import redirect_stdout
from typing import Callable

import torch
from torch import nn

from zoo.config.sections import RunConfig
from zoo.errors import ConfigError, PluginError
from zoo.models.classifier import Classifier
from zoo.models.language_model import LanguageModel
from zoo.registry.discovery import architectures

MAX_PARAMETERS = 2**31  # 8 GiB of float32 weights (and three times that more for Adam): no recurrent classifier
# needs it, and a mistyped size should be an error before any memory is taken
PARAMETER_SETTINGS = {"embedding": "tokenizer.vocab_size x classifier.embedding_dim", "head": "classifier.head_hidden",
                      "forward_head": "classifier.embedding_dim", "backward_head": "classifier.embedding_dim",
                      "output_bias": "tokenizer.vocab_size"}


def build_classifier(config: RunConfig, vocab_size: int, num_classes: int = 2) -> Classifier:
    """Build the plugin's encoder and wrap it in the shared classifier (its size checked first)."""
    check_size(lambda: Classifier(build_encoder(config), vocab_size, config, num_classes), config)
    return Classifier(build_encoder(config), vocab_size, config, num_classes)


def build_language_model(config: RunConfig, vocab_size: int) -> LanguageModel:
    """Build the plugin's encoder and wrap it in the language model (its size checked first)."""
    check_size(lambda: LanguageModel(build_encoder(config), vocab_size, config), config)
    return LanguageModel(build_encoder(config), vocab_size, config)


def check_size(build: Callable[[], nn.Module], config: RunConfig) -> None:
    """Refuse a model over MAX_PARAMETERS before allocating it: `build()` runs on the meta device (shapes, no
    memory), and the error names the largest tensors and the settings behind them."""
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
    return f"architecture {architecture!r} from {architectures().describe(architecture).distribution}"


@torch.no_grad()
def verify_encoder(model: Classifier, ids: torch.Tensor, lengths: torch.Tensor, config: RunConfig) -> None:
    """Check the encoder's output on one real batch (eval mode): [B, T, output_size] and finite, or a PluginError.

    Run once before training, so that a broken plugin is named at its first batch, not as a shape error
    deep inside pooling or as a NaN loss hundreds of steps later.
    """
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
