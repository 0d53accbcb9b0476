"""The zoo's own contract suite, run against this plugin."""

from zoo_resgru import ResGRUHyperparameters, architecture

from zoo.testing import check_architecture


def test_contract_with_defaults():
    check_architecture(architecture)  # shapes, zero padding, padding-exactness, gradients, ONNX parity


def test_contract_one_layer_no_dropout():
    check_architecture(architecture, ResGRUHyperparameters(hidden_size=8, num_layers=1, dropout=0.0))
