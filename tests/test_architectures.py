"""All four built-ins through the same contract checks a third-party plugin runs (zoo.testing)."""

import pytest
import torch

from zoo import testing
from zoo.plugins.hyperparameters import RecurrentHyperparameters
from zoo.registry.discovery import architectures

BUILTINS = ["classic", "peephole", "gru", "bilstm"]


def hp(arch: str, layers: int = 1):
    """Small settings in the architecture's own hyperparameter class (a cell's adds bidirectional)."""
    return architectures().get(arch).hyperparameters(hidden_size=8, num_layers=layers, dropout=0.1)


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
    testing.assert_padding_exact(architectures().get(arch), hp(arch, layers))


@pytest.mark.parametrize("arch", BUILTINS)
def test_shapes_and_zero_padding(arch):
    testing.assert_shapes_and_zero_padding(architectures().get(arch), hp(arch))


@pytest.mark.parametrize("arch", BUILTINS)
def test_gradients_reach_every_parameter(arch):
    testing.assert_gradients_reach_every_parameter(architectures().get(arch), hp(arch, 2))


@pytest.mark.parametrize("arch", BUILTINS)
def test_onnx_lowering_parity(arch):
    report = testing.assert_onnx_parity(architectures().get(arch), hp(arch, 2))
    assert report["max_abs_diff"] <= 1e-5


def test_a_padding_leak_is_caught():
    """The checks can fail: an unmasked backward LSTM is not padding-exact."""
    from torch import nn

    from zoo.contract import Architecture

    class LeakyBiLSTM(nn.Module):
        bidirectional = True

        def __init__(self, size):
            super().__init__()
            self.rnn, self.output_size = nn.LSTM(size, 4, batch_first=True, bidirectional=True), 8

        def forward(self, x, lengths):
            return self.rnn(x)[0]

    leaky = Architecture("leaky", "leaks", RecurrentHyperparameters, lambda h, size: LeakyBiLSTM(size))
    with pytest.raises(AssertionError, match="not padding-exact"):
        testing.assert_padding_exact(leaky)
    with pytest.raises(AssertionError, match="not zero past"):
        testing.assert_shapes_and_zero_padding(leaky)


def test_bilstm_last_pooling_reads_backward_direction_at_first_step():
    """The seed's Bidirectional(LSTM) returns forward h at the end and backward h at step 0."""
    model = testing.small_classifier(architectures().get("bilstm"), hp("bilstm"), pooling="last")
    ids, lengths = testing.padded(testing.random_reviews([6, 11]))
    with torch.no_grad():
        outputs = model.encoder(model.embedding(ids), lengths)
        pooled = model.pooling(outputs, lengths)
    half = model.encoder.output_size // 2
    assert torch.equal(pooled[0, :half], outputs[0, 5, :half])
    assert torch.equal(pooled[0, half:], outputs[0, 0, half:])


def test_keras_init_matches_the_seed_tutorials_initializers():
    from zoo.models.build import build_classifier
    from zoo.registry.resolve import resolve

    model = build_classifier(resolve("bilstm-seed"), 100)
    embedding = model.embedding.weight
    assert embedding.abs().max() <= 0.05 and embedding[0].abs().sum() == 0
    lstm = model.encoder.forward_layers[0]
    hidden = lstm.hidden_size
    assert torch.equal(lstm.bias_ih_l0[hidden:2 * hidden], torch.ones(hidden))  # unit forget bias
    assert lstm.bias_hh_l0.abs().sum() == 0 and lstm.bias_ih_l0[:hidden].abs().sum() == 0
    recurrent = lstm.weight_hh_l0  # [4H, H] with orthonormal columns
    assert torch.allclose(recurrent.T @ recurrent, torch.eye(hidden), atol=1e-5)
    assert all(layer.bias.abs().sum() == 0 for layer in model.head if isinstance(layer, torch.nn.Linear))


def test_embedding_std_sets_the_initial_scale_and_keeps_padding_zero():
    from zoo.errors import ConfigError
    from zoo.models.build import build_classifier
    from zoo.registry.resolve import resolve

    default = build_classifier(resolve("classic"), 2000).embedding.weight[1:]  # PyTorch's N(0, 1)
    recipe = build_classifier(resolve("bilstm"), 2000).embedding.weight  # the recipe's 0.3
    small = build_classifier(resolve("bilstm", ["classifier.embedding_std=0.1"]), 2000).embedding.weight
    assert 0.95 < default.std() < 1.05
    assert 0.285 < recipe[1:].std() < 0.315
    assert 0.095 < small[1:].std() < 0.105 and small[0].abs().sum() == 0
    with pytest.raises(ConfigError, match="embedding_std applies to init = torch"):
        resolve("bilstm-seed", ["classifier.embedding_std=0.1"])
    with pytest.raises(ConfigError, match="embedding_std"):
        resolve("bilstm", ["classifier.embedding_std=0"])


def test_word_dropout_drops_whole_words_in_training_only():
    from zoo.models.build import build_classifier
    from zoo.registry.resolve import resolve

    model = build_classifier(resolve("bilstm", ["classifier.word_dropout=0.5", "classifier.embedding_dropout=0"]), 100)
    seen = []
    model.encoder.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    ids, lengths = testing.padded(testing.random_reviews([40, 25, 33]))
    torch.manual_seed(0)
    model.train()
    model(ids, lengths)
    model.eval()
    with torch.no_grad():
        model(ids, lengths)
    trained, evaluated = seen
    embedded = model.embedding(ids)
    dropped = trained.abs().sum(-1) == 0
    real = ids != 0
    assert 0.3 < dropped[real].float().mean() < 0.7  # about half of the real words, whole vectors
    assert torch.equal(trained[~dropped], embedded[~dropped])  # the rest untouched, not rescaled
    assert torch.equal(evaluated, embedded.detach())
