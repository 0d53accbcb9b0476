"""Named recipes: an architecture plus settings for any section, from registry.toml or a plugin package.

registry.toml ships inside the installed package (see setup.py); an editable
install reads it from the checkout. One validator (`recipe_from_table`) checks
every recipe, built-in or a plugin's, against the config's sections, so both
may set the same things. Names are resolved to run configs in zoo.registry.resolve.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from zoo.config.sections import RECIPE_SECTIONS
from zoo.errors import ConfigError

_PACKAGED = Path(__file__).resolve().parents[1] / "registry.toml"  # zoo/registry.toml in an installed wheel
_CHECKOUT = Path(__file__).resolve().parents[2] / "registry.toml"  # the checkout's, for an editable install


@dataclass(frozen=True)
class Recipe:
    name: str
    architecture: str
    summary: str
    sections: dict[str, dict[str, Any]]
    # Settings for a small set of short texts, over `sections` (zoo.training.fit decides from the training split).
    small_data: dict[str, dict[str, Any]] = field(default_factory=dict)


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
    return {k: dict(v) for k, v in defaults.items() if k in RECIPE_SECTIONS}


def recipe_from_table(name: str, body: object, where: str) -> Recipe:
    """A recipe from its table ({"architecture": NAME, "summary": ..., SECTION: {...}, ...}), or a ConfigError
    saying what is wrong. Which settings a section may hold is checked when the recipe is resolved."""
    if not isinstance(body, dict) or not isinstance(body.get("architecture"), str):
        raise ConfigError(f"{where}: recipe {name!r} needs an architecture name (`architecture = \"...\"`)")
    allowed = {"architecture", "summary", "small_data", *RECIPE_SECTIONS}
    extra = sorted(map(str, set(body) - allowed))
    if extra:
        raise ConfigError(f"{where}: recipe {name!r} has unknown key(s) {', '.join(extra)}; allowed: "
                          f"{', '.join(sorted(allowed))}")
    for section in RECIPE_SECTIONS:
        if not isinstance(body.get(section, {}), dict):
            raise ConfigError(f"{where}: recipe {name!r}: {section} must be a table of settings")
    small = body.get("small_data", {})
    if not isinstance(small, dict) or not all(k in RECIPE_SECTIONS and isinstance(v, dict) for k, v in small.items()):
        raise ConfigError(f"{where}: recipe {name!r}: small_data must be a table of sections "
                          f"({', '.join(RECIPE_SECTIONS)}), each a table of settings")
    sections = {k: dict(v) for k, v in body.items() if k in RECIPE_SECTIONS}
    return Recipe(name, body["architecture"], str(body.get("summary", "")), sections,
                  {k: dict(v) for k, v in small.items()})


@lru_cache(maxsize=None)
def load_recipes(path: Path | None = None) -> dict[str, Recipe]:
    """The built-in recipes of registry.toml."""
    path = path or registry_path()
    return {name: recipe_from_table(name, body, str(path)) for name, body in _catalog(path).get("recipes", {}).items()}


def with_defaults(recipe: Recipe) -> Recipe:
    """A plugin's recipe over registry.toml's [defaults]: what it leaves out comes from there."""
    defaults = default_sections()
    sections = {s: {**defaults.get(s, {}), **recipe.sections.get(s, {})} for s in RECIPE_SECTIONS}
    return Recipe(recipe.name, recipe.architecture, recipe.summary, sections, recipe.small_data)
