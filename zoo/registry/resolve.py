"""From a name to a run's config: a built-in recipe, a plugin's recipe or a bare architecture, with `--set`
overrides; and back from a run directory's saved config."""

from __future__ import annotations

from typing import Any

from zoo.config.recipes import Recipe, default_sections, load_recipes, with_defaults
from zoo.config.sections import RECIPE_SECTIONS, SECTIONS, RunConfig
from zoo.config.values import build_section, parse_overrides
from zoo.errors import ConfigError, PluginError, UnknownNameError
from zoo.registry.discovery import architectures, disabled_hint, plugin_recipes


def find_recipe(name: str) -> Recipe:
    """NAME as a built-in recipe, a plugin's recipe (zoo.recipes entry point) or a bare architecture.

    A plugin recipe and a bare architecture start from registry.toml's [defaults]. A plugin recipe named like
    a built-in one is a conflict, as between two plugins.
    """
    builtin, plugins = load_recipes(), plugin_recipes()
    if name in plugins.names():
        provider = plugins.describe(name).distribution
        if name in builtin:
            raise PluginError(f"recipe {name!r} is offered by both recurrent-model-zoo (registry.toml) and {provider}; "
                              f"uninstall {provider.split()[0]} or rename its recipe")
        return with_defaults(plugins.get(name))
    if name in builtin:
        return builtin[name]
    if name in architectures().names():
        return Recipe(name, name, "", default_sections())
    raise UnknownNameError(
        f"unknown recipe or architecture {name!r}; recipes: {', '.join([*builtin, *plugins.names()]) or 'none'}; "
        f"architectures: {', '.join(architectures().names()) or 'none'} (see `zoo list`){disabled_hint()}"
    )


def resolve(name: str, overrides: list[str] | tuple[str, ...] = (), small_data: bool = False) -> RunConfig:
    """The full run config for a recipe or architecture name, with `--set` overrides applied; `small_data`: with
    the recipe's settings for a small set of short texts under the overrides."""
    recipe = find_recipe(name)
    registry = architectures()
    arch = registry.get(recipe.architecture)
    extra = parse_overrides(list(overrides), arch.hyperparameters)
    small = recipe.small_data if small_data else {}
    values = {section: {**recipe.sections.get(section, {}), **small.get(section, {}), **extra.get(section, {})}
              for section in RECIPE_SECTIONS}
    return RunConfig(
        recipe=name,
        architecture=recipe.architecture,
        encoder=build_section(arch.hyperparameters, values["encoder"], f"{name}: encoder"),
        **{section: build_section(cls, values[section], f"{name}: {section}") for section, cls in SECTIONS.items()},
    )


def small_data_settings(name: str, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """What the recipe changes for a small set of short texts once the overrides have their say:
    {"section.key": value}, empty when nothing."""
    if not find_recipe(name).small_data:
        return {}
    usual, small = resolve(name, overrides).to_dict(), resolve(name, overrides, small_data=True).to_dict()
    return {f"{section}.{key}": value for section in RECIPE_SECTIONS
            for key, value in small[section].items() if usual[section][key] != value}


def with_settings(config: RunConfig, settings: dict[str, Any]) -> RunConfig:
    """`config` with {"section.key": value} settings in place, checked as a saved config is."""
    data = config.to_dict()
    for key, value in settings.items():
        section, name = key.split(".", 1)
        data[section][name] = value
    return config_from_dict(data)


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig saved by RunConfig.to_dict() (a run dir's config.json).

    Runs written before `pretrain.output_dropout` existed used `classifier.head_dropout` there."""
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("recipe", "architecture")):
        raise ConfigError("run config needs 'recipe' and 'architecture' names; is this a run directory written by `zoo train`?")
    try:
        arch = architectures().get(data["architecture"])
        return RunConfig(
            recipe=data["recipe"],
            architecture=data["architecture"],
            encoder=build_section(arch.hyperparameters, data["encoder"], "config: encoder"),
            **{section: build_section(cls, _saved_section(data, section), f"config: {section}")
               for section, cls in SECTIONS.items()},
        )
    except KeyError as exc:
        raise ConfigError(f"run config lacks {exc}; is this a run directory written by `zoo train`?") from None


def _saved_section(data: dict[str, Any], section: str) -> Any:
    """A section of a saved config; older runs lack `pretrain` or its `output_dropout`."""
    if section != "pretrain":
        return data[section]
    saved = data.get("pretrain", {})
    if isinstance(saved, dict) and "output_dropout" not in saved and saved:
        saved = saved | {"output_dropout": data.get("classifier", {}).get("head_dropout", 0.0)}
    return saved
