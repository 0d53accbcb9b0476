"""Cell plugins: one step written, the zoo supplies the loop, padding, layers, both directions and ONNX (Scan)."""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from zoo import testing
from zoo.errors import PluginError
from zoo.plugin_api import cell_architecture
from zoo.plugin_api.cells import Cell


@dataclass
class ElmanHyperparameters:
    hidden_size: int = 6


class ElmanCell(Cell):
    """h_t = tanh(W x_t + U h_{t-1} + b): the smallest cell, with a hoisted projection."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size, self.state_sizes = hidden_size, (hidden_size,)
        self.input = nn.Linear(input_size, hidden_size)
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)

    def project(self, x):
        return self.input(x)

    def step(self, x_t, state):
        h = torch.tanh(x_t + self.recurrent(state[0]))
        return h, (h,)


class TwoStateCell(Cell):
    """No projection; two states, one of them a running sum: state beyond h must be frozen too."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size, self.state_sizes = hidden_size, (hidden_size, hidden_size)
        self.mix = nn.Linear(input_size + hidden_size, hidden_size)

    def step(self, x_t, state):
        h, total = state
        h = torch.tanh(self.mix(torch.cat([x_t, h], dim=-1)) + 0.1 * total)
        return h, (h, total + h)


elman = cell_architecture("elman", "Elman RNN", ElmanHyperparameters, lambda hp, size: ElmanCell(size, hp.hidden_size))
two_state = cell_architecture("twostate", "two states", ElmanHyperparameters,
                              lambda hp, size: TwoStateCell(size, hp.hidden_size))


@pytest.mark.parametrize("architecture", [elman, two_state], ids=["elman", "two-state"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_cells_meet_the_encoder_contract_and_export_through_scan(architecture, layers, bidirectional):
    hp = architecture.hyperparameters(num_layers=layers, bidirectional=bidirectional, dropout=0.2)
    testing.check_architecture(architecture, hp)  # shapes, zero padding, exactness, gradients, ONNX parity (Scan)
    model = testing.small_classifier(architecture, hp)
    assert model.encoder.output_size == (2 if bidirectional else 1) * 6


def test_shared_hyperparameters_are_added_and_checked():
    names = [f for f in elman.hyperparameters.__dataclass_fields__]
    assert set(names) == {"hidden_size", "num_layers", "dropout", "bidirectional"}
    with pytest.raises(ValueError, match="num_layers"):
        elman.hyperparameters(num_layers=0)


def test_peephole_scan_lowering_agrees_with_its_native_lstm():
    """The same weights through ONNX's LSTM-with-P (the fast path) and through the generic Scan lowering."""
    from zoo.exporters.onnx.classifier import build_onnx
    from zoo.exporters.onnx.scan import lower_cell_encoder
    from zoo.exporters.onnx.validation import validate
    from zoo.inference.runtime import open_session
    from zoo.registry.discovery import architectures

    peephole = architectures().get("peephole")
    for bidirectional in (False, True):
        model = testing.small_classifier(peephole, peephole.hyperparameters(hidden_size=8, num_layers=2,
                                                                             bidirectional=bidirectional))
        rows = [r.astype(np.int64) for r in testing.random_reviews(list(range(1, 60)) + [200], seed=4)]
        with tempfile.TemporaryDirectory() as tmp:
            logits = {}
            for name, lower in (("native", peephole.lower_onnx), ("scan", lower_cell_encoder)):
                path = Path(tmp) / f"{name}.onnx"
                build_onnx(model, lower, 17, {}, path)
                session = open_session(path)
                assert validate(model, session, rows, 1e-5)["passed"]
                ids, lengths = testing.padded(rows)
                logits[name] = session.run(["logits"], {"input_ids": ids.numpy(), "lengths": lengths.numpy()})[0]
            scan_ops = {n.op_type for n in __import__("onnx").load(str(Path(tmp) / "scan.onnx")).graph.node}
            assert "Scan" in scan_ops and "LSTM" not in scan_ops
        assert np.abs(logits["native"] - logits["scan"]).max() < 1e-5


class NoStateSizes(nn.Module):
    hidden_size = 4

    def step(self, x_t, state):
        return x_t, state


class WrongStateCount(Cell):
    def __init__(self, size):
        super().__init__()
        self.hidden_size, self.state_sizes, self.linear = 4, (4, 4), nn.Linear(size, 4)

    def step(self, x_t, state):
        h = self.linear(x_t)
        return h, (h,)


class WrongHidden(Cell):
    def __init__(self, size):
        super().__init__()
        self.hidden_size, self.state_sizes, self.linear = 4, (3,), nn.Linear(size, 3)

    def step(self, x_t, state):
        h = self.linear(x_t)
        return h, (h,)


@pytest.mark.parametrize("cell,message", [
    (lambda size: NoStateSizes(), "state_sizes"),
    (lambda size: WrongStateCount(size), "returned 1 state tensors; state_sizes has 2"),
    (lambda size: WrongHidden(size), "h_t of shape [3, 3], expected [3, 4]"),
    (lambda size: "not a module", "torch.nn.Module"),
])
def test_each_way_to_get_a_cell_wrong_has_a_clear_error(cell, message):
    broken = cell_architecture("broken", "broken", ElmanHyperparameters, lambda hp, size: cell(size))
    with pytest.raises((PluginError, ValueError), match=message.replace("[", r"\[").replace("]", r"\]")):
        model = testing.small_classifier(broken)
        ids, lengths = testing.padded(testing.random_reviews([3, 5, 2]))
        model(ids, lengths)


PARAMETRIZED = """
import torch
from torch import nn
from zoo.plugin_api.cells import Cell


class NonNegative(nn.Module):
    def forward(self, weight):
        return nn.functional.softplus(weight)


class DecayCell(Cell):
    \"\"\"h_t = tanh(x_t W) + exp(-d) * h_{t-1}, with the decay rates d kept >= 0 by a parametrization.\"\"\"

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size, self.state_sizes = hidden_size, (hidden_size,)
        self.input = nn.Linear(input_size, hidden_size)
        self.decay = nn.Parameter(torch.randn(hidden_size))
        nn.utils.parametrize.register_parametrization(self, "decay", NonNegative())

    def step(self, x_t, state):
        (h,) = state
        h = torch.tanh(self.input(x_t)) + torch.exp(-self.decay) * h
        return h, (h,)
"""


def test_a_cell_with_a_constrained_weight_passes_the_contract_suite(tmp_path, monkeypatch):
    """docs/plugins.md: a weight kept in range by torch's parametrizations trains and exports like any other."""
    from dataclasses import dataclass

    (tmp_path / "decay_cell.py").write_text(PARAMETRIZED)
    monkeypatch.syspath_prepend(str(tmp_path))

    @dataclass
    class DecayHyperparameters:
        hidden_size: int = 5

    def build_cell(hp, input_size):
        from decay_cell import DecayCell

        return DecayCell(input_size, hp.hidden_size)

    architecture = cell_architecture("decay", "a decay cell", DecayHyperparameters, build_cell)
    testing.check_architecture(architecture, DecayHyperparameters(hidden_size=4))  # the plugin's own dataclass
    cell = build_cell(DecayHyperparameters(), 3)
    assert float(cell.decay.detach().min()) >= 0.0 and "parametrizations.decay.original" in dict(cell.named_parameters())
