"""The zoo's own contract suite, run against this cell plugin: both directions, layers, ONNX through Scan."""

from zoo_mgu import architecture

from zoo.testing import check_architecture


def test_contract_with_defaults():
    check_architecture(architecture)  # forward and bidirectional: exactness, gradients, ONNX (Scan) parity


def test_contract_two_layers():
    check_architecture(architecture, architecture.hyperparameters(hidden_size=8, num_layers=2, dropout=0.1))
