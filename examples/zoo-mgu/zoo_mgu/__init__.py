"""`mgu`: the minimal gated unit (Zhou et al. 2016) as a zoo cell plugin (light: no torch at import)."""

from dataclasses import dataclass

from zoo.plugin_api import cell_architecture


@dataclass
class MGUHyperparameters:
    hidden_size: int = 64


def build_cell(hp: MGUHyperparameters, input_size: int):
    from zoo_mgu.cell import MGUCell  # torch is imported only when a model is built

    return MGUCell(input_size, hp.hidden_size)


architecture = cell_architecture(name="mgu", summary="minimal gated unit: one forget gate (example cell plugin)",
                                 hyperparameters=MGUHyperparameters, build_cell=build_cell)

# A recipe shipped with the plugin (entry point group zoo.recipes); unset values come from the zoo's defaults.
imdb_recipe = {"architecture": "mgu", "summary": "MGU 96 for IMDB reviews, the zoo's default training settings",
               "encoder": {"hidden_size": 96}, "train": {"epochs": 5}}
