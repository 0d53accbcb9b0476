"""What a plugin author imports: the one documented path (docs/plugins.md).

At a plugin module's top level (light: no torch):

    from zoo.plugin_api import Architecture, cell_architecture, Exporter

Inside `build` / `build_cell` and the modules they import (torch):

    from zoo.plugin_api.cells import Cell                       # one recurrent step
    from zoo.plugin_api.sequences import step_mask, reverse_within_length

In a native ONNX lowering:

    from zoo.plugin_api.onnx import Graph, mask_padding, lower_lstm_stack, ...

And in the plugin's tests, the zoo's contract suite (it exercises a plugin through the whole zoo, so it stands
above the rest of the code, at zoo.testing):

    from zoo.testing import check_architecture
"""

from zoo.plugin_api.contract import (
                                     PLUGIN_API_VERSION,
                                     Architecture,
                                     CellHyperparameters,
                                     ContractError,
                                     Exporter,
                                     cell_architecture,
)

__all__ = ["PLUGIN_API_VERSION", "Architecture", "CellHyperparameters", "ContractError", "Exporter",
           "cell_architecture"]
