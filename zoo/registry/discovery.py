"""Plugin discovery through entry points: lazy, isolated, and strict about conflicts.

Names come from entry point metadata without importing anything. A plugin's
module is imported only when the plugin is used or described; whatever goes
wrong there (an import error, a broken contract, another plugin API version)
is caught and reported as that plugin's status, never raised into unrelated
commands. Two distributions offering the same name is a conflict: the name is
listed with both, and using it is an error naming both.

The built-ins register through this project's own entry points, exactly like
third-party packages. `ZOO_DISABLE_PLUGINS=1` hides every plugin not shipped by
this project.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

from zoo.config.recipes import Recipe, recipe_from_table
from zoo.errors import PluginError, UnknownNameError
from zoo.plugin_api.contract import PLUGIN_API_VERSION, checked_architecture, checked_exporter

ARCHITECTURES = "zoo.architectures"
EXPORTERS = "zoo.exporters"
RECIPES = "zoo.recipes"
BUILTIN_DISTRIBUTION = "recurrent-model-zoo"
DISABLE_ENV = "ZOO_DISABLE_PLUGINS"

OK, BROKEN, INCOMPATIBLE, CONFLICT = "ok", "broken", "incompatible", "conflict"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def plugins_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def disabled_hint() -> str:
    """A note for 'unknown name' errors while third-party plugins are hidden."""
    return f" ({DISABLE_ENV} is set: third-party plugins are hidden)" if plugins_disabled() else ""


@dataclass(frozen=True)
class Provider:
    """One distribution's entry point for a name (metadata only, nothing imported)."""

    name: str
    distribution: str
    version: str
    target: str
    entry_point: metadata.EntryPoint = field(compare=False, repr=False)

    @property
    def builtin(self) -> bool:
        return _normalize(self.distribution) == BUILTIN_DISTRIBUTION

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}"


@dataclass
class Described:
    """What `zoo list` shows for one name: its provider(s), status and error."""

    name: str
    providers: list[Provider]
    status: str
    summary: str = ""
    error: str | None = None
    plugin: Any = None

    @property
    def distribution(self) -> str:
        return ", ".join(p.label for p in self.providers)


def _checked_recipe(obj: Any, entry_name: str) -> Recipe:
    """A plugin's recipe: a table like registry.toml's, checked by the same validator."""
    return recipe_from_table(entry_name, obj, "the plugin's recipe")


_CHECKS: dict[str, Callable[[Any, str], Any]] = {ARCHITECTURES: checked_architecture, EXPORTERS: checked_exporter,
                                                  RECIPES: _checked_recipe}
_KIND = {ARCHITECTURES: "architecture", EXPORTERS: "export format", RECIPES: "recipe"}


class Registry:
    """The plugins of one entry point group."""

    def __init__(self, group: str):
        self.group = group
        self._providers: dict[str, list[Provider]] | None = None
        self._described: dict[str, Described] = {}

    def providers(self) -> dict[str, list[Provider]]:
        """Every name in the group with the distributions that offer it, from metadata alone."""
        if self._providers is None:
            found: dict[str, list[Provider]] = {}
            skip_third_party = plugins_disabled()
            for ep in metadata.entry_points(group=self.group):
                dist = ep.dist
                provider = Provider(
                    name=ep.name,
                    distribution=dist.name if dist else "<unknown distribution>",
                    version=dist.version if dist else "?",
                    target=ep.value,
                    entry_point=ep,
                )
                if skip_third_party and not provider.builtin:
                    continue
                same_name = found.setdefault(ep.name, [])
                # One distribution visible twice on sys.path is not a conflict.
                if not any(_normalize(p.distribution) == _normalize(provider.distribution) for p in same_name):
                    same_name.append(provider)
            self._providers = dict(sorted(found.items()))
        return self._providers

    def names(self) -> list[str]:
        return list(self.providers())

    def describe(self, name: str) -> Described:
        """Import and check one plugin; never raises for a plugin's own faults."""
        if name in self._described:
            return self._described[name]
        providers = self.providers().get(name)
        if providers is None:
            raise self._unknown(name)
        if len(providers) > 1:
            owners = " and ".join(p.label for p in providers)
            described = Described(
                name, providers, CONFLICT,
                error=f"{_KIND[self.group]} {name!r} is offered by both {owners}; uninstall one of them",
            )
        else:
            described = self._load(name, providers[0])
        self._described[name] = described
        return described

    def _load(self, name: str, provider: Provider) -> Described:
        try:
            with redirect_stdout(sys.stderr):  # a plugin printing at import must not corrupt --json output
                obj = provider.entry_point.load()
        except (Exception, SystemExit) as exc:
            return Described(name, [provider], BROKEN, error=f"importing {provider.target} failed: {type(exc).__name__}: {exc}")
        version = getattr(obj, "api_version", PLUGIN_API_VERSION)
        if isinstance(version, int) and version != PLUGIN_API_VERSION:
            return Described(
                name, [provider], INCOMPATIBLE,
                summary=str(getattr(obj, "summary", "")),
                error=f"written for plugin API {version}, this zoo speaks {PLUGIN_API_VERSION}; upgrade {provider.distribution} or the zoo",
            )
        try:
            plugin = _CHECKS[self.group](obj, name)
        except Exception as exc:
            return Described(name, [provider], BROKEN, error=f"breaks the plugin contract: {exc}")
        return Described(name, [provider], OK, summary=plugin.summary, plugin=plugin)

    def get(self, name: str) -> Any:
        """The plugin object for `name`, or a PluginError / UnknownNameError a user can act on."""
        described = self.describe(name)
        if described.status == OK:
            return described.plugin
        if described.status == CONFLICT:
            raise PluginError(described.error)
        raise PluginError(f"{_KIND[self.group]} {name!r} from {described.distribution} is {described.status}: {described.error}")

    def _unknown(self, name: str) -> UnknownNameError:
        available = ", ".join(self.names()) or "none"
        return UnknownNameError(f"unknown {_KIND[self.group]} {name!r}; available: {available}{disabled_hint()}")


_registries: dict[str, Registry] = {}


def registry(group: str) -> Registry:
    """The process-wide registry of one entry point group."""
    if group not in _registries:
        _registries[group] = Registry(group)
    return _registries[group]


def architectures() -> Registry:
    return registry(ARCHITECTURES)


def exporters() -> Registry:
    return registry(EXPORTERS)


def plugin_recipes() -> Registry:
    """Recipes offered by plugin packages (registry.toml's built-in recipes: zoo.config.recipes)."""
    return registry(RECIPES)
