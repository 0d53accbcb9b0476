"""All four built-ins: shapes, padding-exactness, gradients reaching every parameter."""

import pytest
import torch

from zoo.config import ClassifierConfig, RunConfig
from zoo.model import build_classifier
from zoo.plugins.hyperparameters import RecurrentHyperparameters
from zoo.registry import architectures

BUILTINS = ["classic", "peephole", "gru", "bilstm"]
VOCAB = 50


def small_model(arch: str, layers: int = 1, pooling: str = "max+mean+last") -> torch.nn.Module:
    torch.manual_seed(0)
    config = RunConfig(arch, arch, RecurrentHyperparameters(hidden_size=8, num_layers=layers, dropout=0.1),
                       ClassifierConfig(embedding_dim=6, pooling=pooling, head_hidden=5))
    return build_classifier(config, VOCAB).eval()


def random_review(length: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(1, VOCAB, (length,), generator=generator)


def pad(reviews: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in reviews])
    ids = torch.zeros(len(reviews), int(lengths.max()), dtype=torch.long)
    for row, review in enumerate(reviews):
        ids[row, : len(review)] = review
    return ids, lengths


def test_builtins_are_discovered_through_entry_points():
    registry = architectures()
    for name in BUILTINS:
        described = registry.describe(name)
        assert described.status == "ok", described.error
        assert described.providers[0].builtin
        assert described.providers[0].target == f"zoo.plugins.{name}:architecture"


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("arch", BUILTINS)
def test_padding_exact(arch, layers):
    """A review's logit alone equals its logit batched with a 3x longer one (and in any row)."""
    model = small_model(arch, layers)
    g = torch.Generator().manual_seed(1)
    review, longer = random_review(13, g), random_review(39, g)
    with torch.no_grad():
        alone = model(*pad([review]))
        first = model(*pad([review, longer]))[0]
        second = model(*pad([longer, review]))[1]
    assert torch.allclose(alone[0], first, atol=1e-5, rtol=0), (alone, first)
    assert torch.allclose(alone[0], second, atol=1e-5, rtol=0), (alone, second)


@pytest.mark.parametrize("arch", BUILTINS)
def test_encoder_outputs_zero_at_padding_and_shapes(arch):
    model = small_model(arch)
    g = torch.Generator().manual_seed(2)
    ids, lengths = pad([random_review(n, g) for n in (3, 10, 7)])
    with torch.no_grad():
        outputs = model.encoder(model.embedding(ids), lengths)
        logits = model(ids, lengths)
    assert outputs.shape == (3, 10, model.encoder.output_size)
    assert logits.shape == (3,)
    for row, n in enumerate(lengths.tolist()):
        if n < 10:
            assert outputs[row, n:].abs().max().item() == 0.0
        assert outputs[row, :n].abs().sum() > 0


@pytest.mark.parametrize("arch", BUILTINS)
def test_gradients_reach_every_parameter(arch):
    model = small_model(arch, layers=2).train()
    g = torch.Generator().manual_seed(3)
    ids, lengths = pad([random_review(n, g) for n in (5, 12, 9, 1)])
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(ids, lengths), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_bilstm_last_pooling_reads_backward_direction_at_first_step():
    """The seed's Bidirectional(LSTM) returns forward h at the end and backward h at step 0."""
    model = small_model("bilstm", pooling="last")
    g = torch.Generator().manual_seed(4)
    ids, lengths = pad([random_review(6, g), random_review(11, g)])
    with torch.no_grad():
        outputs = model.encoder(model.embedding(ids), lengths)
        pooled = model.pooling(outputs, lengths)
    half = model.encoder.output_size // 2
    assert torch.equal(pooled[0, :half], outputs[0, 5, :half])
    assert torch.equal(pooled[0, half:], outputs[0, 0, half:])
