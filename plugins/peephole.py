"""`peephole`: an LSTM with peephole connections, in ONNX's formulation (LSTM with P), as a cell plugin.

The zoo runs the cell (time loop, padding, layers, both directions); the ONNX export
keeps a native fast path, ONNX's own LSTM op with peepholes.
"""

from zoo.plugin_api import cell_architecture
from zoo.plugins.hyperparameters import RecurrentHyperparameters


def build_cell(hp: RecurrentHyperparameters, input_size: int):
    from zoo.plugins.encoders import PeepholeLSTMCell

    return PeepholeLSTMCell(input_size, hp.hidden_size)


def lower_onnx(encoder, graph, x: str, lengths: str) -> str:
    from zoo.plugin_api.onnx import lower_peephole_stack

    return lower_peephole_stack(graph, encoder, x, lengths)


architecture = cell_architecture(
    name="peephole",
    summary="LSTM with peephole connections (gates see the cell state)",
    hyperparameters=RecurrentHyperparameters,
    build_cell=build_cell,
    lower_onnx=lower_onnx,
)
