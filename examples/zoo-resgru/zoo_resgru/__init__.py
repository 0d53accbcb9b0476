"""`resgru`: stacked GRUs with pre-layer-norm residual connections (light: no torch at import)."""

from dataclasses import dataclass

from zoo.plugin_api import Architecture


@dataclass
class ResGRUHyperparameters:
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.1  # on each residual branch


def build(hp: ResGRUHyperparameters, input_size: int):
    from zoo_resgru.encoder import ResidualGRU  # torch is imported only when a model is built

    return ResidualGRU(input_size, hp.hidden_size, hp.num_layers, hp.dropout)


architecture = Architecture(
    name="resgru",
    summary="residual GRU stack with pre-layer-norm (example plugin)",
    hyperparameters=ResGRUHyperparameters,
    build=build,
)
