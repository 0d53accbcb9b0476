"""Named recipes from registry.toml: an architecture plus hyperparameters and training settings.

`zoo train NAME` resolves NAME as a recipe first, else as an architecture with
its defaults. registry.toml ships inside the installed package (see setup.py);
an editable install reads it from the checkout.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from zoo.config import SECTIONS, RunConfig, build_section, parse_overrides
from zoo.errors import ConfigError, UnknownNameError

_PACKAGED = Path(__file__).with_name("registry.toml")
_CHECKOUT = Path(__file__).resolve().parent.parent / "registry.toml"


@dataclass(frozen=True)
class Recipe:
    name: str
    architecture: str
    summary: str
    sections: dict[str, dict[str, Any]]


def registry_path() -> Path:
    for path in (_PACKAGED, _CHECKOUT):
        if path.is_file():
            return path
    raise ConfigError(f"registry.toml not found (looked at {_PACKAGED} and {_CHECKOUT}); reinstall the zoo")


@lru_cache(maxsize=None)
def _catalog(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the recipe catalog {path}: {exc}") from None


def default_sections() -> dict[str, dict[str, Any]]:
    """registry.toml's [defaults]: the training settings of an architecture trained without a recipe, and the
    base of every plugin recipe."""
    defaults = _catalog(registry_path()).get("defaults", {})
    return {k: dict(v) for k, v in defaults.items() if k in ("encoder", *SECTIONS)}


@lru_cache(maxsize=None)
def load_recipes(path: Path | None = None) -> dict[str, Recipe]:
    """The built-in recipes of registry.toml."""
    path = path or registry_path()
    raw = _catalog(path)
    recipes = {}
    for name, body in raw.get("recipes", {}).items():
        if not isinstance(body, dict) or not isinstance(body.get("architecture"), str):
            raise ConfigError(f"{path}: recipe {name!r} needs an `architecture = \"...\"` line")
        allowed = {"architecture", "summary", "encoder", *SECTIONS}
        extra = sorted(set(body) - allowed)
        if extra:
            raise ConfigError(f"{path}: recipe {name!r} has unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")
        sections = {k: dict(v) for k, v in body.items() if k in ("encoder", *SECTIONS)}
        recipes[name] = Recipe(name, body["architecture"], str(body.get("summary", "")), sections)
    return recipes


def find_recipe(name: str) -> Recipe:
    """NAME as a built-in recipe, a plugin's recipe (zoo.recipes entry point) or a bare architecture.

    A plugin recipe and a bare architecture start from registry.toml's [defaults]. A plugin recipe named like
    a built-in one is a conflict, as between two plugins.
    """
    from zoo.errors import PluginError
    from zoo.registry import architectures, disabled_hint, plugin_recipes

    builtin, plugins = load_recipes(), plugin_recipes()
    if name in plugins.names():
        provider = plugins.describe(name).distribution
        if name in builtin:
            raise PluginError(f"recipe {name!r} is offered by both recurrent-model-zoo (registry.toml) and {provider}; "
                              f"uninstall {provider.split()[0]} or rename its recipe")
        offered = plugins.get(name)
        defaults = default_sections()
        sections = {s: {**defaults.get(s, {}), **offered.body.get(s, {})} for s in ("encoder", *SECTIONS)}
        return Recipe(name, offered.body["architecture"], offered.summary, sections)
    if name in builtin:
        return builtin[name]
    if name in architectures().names():
        return Recipe(name, name, "", default_sections())
    raise UnknownNameError(
        f"unknown recipe or architecture {name!r}; recipes: {', '.join([*builtin, *plugins.names()]) or 'none'}; "
        f"architectures: {', '.join(architectures().names()) or 'none'} (see `zoo list`){disabled_hint()}"
    )


def resolve(name: str, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The full run config for a recipe or architecture name, with `--set` overrides applied."""
    from zoo.registry import architectures

    recipe = find_recipe(name)
    registry = architectures()
    arch = registry.get(recipe.architecture)
    extra = parse_overrides(list(overrides), arch.hyperparameters)
    values = {section: {**recipe.sections.get(section, {}), **extra.get(section, {})} for section in ("encoder", *SECTIONS)}
    return RunConfig(
        recipe=name,
        architecture=recipe.architecture,
        encoder=build_section(arch.hyperparameters, values["encoder"], f"{name}: encoder"),
        **{section: build_section(cls, values[section], f"{name}: {section}") for section, cls in SECTIONS.items()},
    )


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig saved by RunConfig.to_dict() (a run dir's config.json)."""
    from zoo.registry import architectures

    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("recipe", "architecture")):
        raise ConfigError("run config needs 'recipe' and 'architecture' names; is this a run directory written by `zoo train`?")
    try:
        arch = architectures().get(data["architecture"])
        return RunConfig(
            recipe=data["recipe"],
            architecture=data["architecture"],
            encoder=build_section(arch.hyperparameters, data["encoder"], "config: encoder"),
            **{section: build_section(cls, data[section] if section != "pretrain" else data.get(section, {}),
                                      f"config: {section}") for section, cls in SECTIONS.items()},
        )
    except KeyError as exc:
        raise ConfigError(f"run config lacks {exc}; is this a run directory written by `zoo train`?") from None
