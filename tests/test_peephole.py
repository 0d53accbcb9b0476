"""The peephole cell against an independent numpy implementation of ONNX's LSTM-with-P equations."""

import numpy as np
import torch

from zoo.plugin_api.cells import run_cell
from zoo.plugins.encoders import PeepholeLSTMCell


def run(cell, x):
    """The cell over every step of x (no padding)."""
    return run_cell(cell, x, torch.ones(x.shape[0], x.shape[1], 1, dtype=torch.bool))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_peephole(x, W, R, b, P):
    """ONNX LSTM, forward, peepholes P = [p_i, p_o, p_f], gate order i, o, f, c; x: [B, T, I]."""
    batch, steps, _ = x.shape
    hidden = R.shape[1]
    h = np.zeros((batch, hidden))
    c = np.zeros((batch, hidden))
    Wi, Wo, Wf, Wc = np.split(W, 4)
    Ri, Ro, Rf, Rc = np.split(R, 4)
    bi, bo, bf, bc = np.split(b, 4)
    p_i, p_o, p_f = P
    out = np.zeros((batch, steps, hidden))
    for t in range(steps):
        xt = x[:, t]
        i = sigmoid(xt @ Wi.T + h @ Ri.T + p_i * c + bi)
        f = sigmoid(xt @ Wf.T + h @ Rf.T + p_f * c + bf)
        c = f * c + i * np.tanh(xt @ Wc.T + h @ Rc.T + bc)
        o = sigmoid(xt @ Wo.T + h @ Ro.T + p_o * c + bo)
        h = o * np.tanh(c)
        out[:, t] = h
    return out


def test_peephole_layer_matches_numpy_reference():
    torch.manual_seed(0)
    layer = PeepholeLSTMCell(5, 7).double()
    with torch.no_grad():
        layer.peephole.uniform_(-1.0, 1.0)  # large enough that a missing peephole term would show
    x = torch.randn(3, 11, 5, dtype=torch.float64)
    got = run(layer, x).detach().numpy()
    want = reference_peephole(
        x.numpy(), layer.weight_ih.detach().numpy(), layer.weight_hh.detach().numpy(),
        layer.bias.detach().numpy(), layer.peephole.detach().numpy(),
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_peepholes_change_the_output():
    torch.manual_seed(0)
    layer = PeepholeLSTMCell(4, 6)
    x = torch.randn(2, 9, 4)
    with torch.no_grad():
        layer.peephole.fill_(1.0)
        with_peepholes = run(layer, x)
        layer.peephole.zero_()
        without = run(layer, x)
    assert (with_peepholes - without).abs().max() > 1e-3
