"""What `zoo list` shows: every recipe, architecture and export format, with its status."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import metadata

from zoo.config.recipes import load_recipes
from zoo.errors import ZooError
from zoo.registry.discovery import (
    BUILTIN_DISTRIBUTION,
    CONFLICT,
    OK,
    Described,
    architectures,
    exporters,
    plugin_recipes,
)
from zoo.registry.resolve import resolve


@dataclass
class Row:
    name: str
    kind: str  # "recipe", "architecture" or "exporter"
    status: str  # "ok", "broken", "incompatible" or "conflict"
    distribution: str  # "name version", several joined with ", " on a conflict
    summary: str
    error: str | None
    providers: list[dict[str, str]]

    def to_dict(self) -> dict:
        return asdict(self)


def _own_distribution() -> dict[str, str]:
    try:
        version = metadata.version(BUILTIN_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        from zoo import __version__ as version
    return {"name": BUILTIN_DISTRIBUTION, "version": version}


def _plugin_row(kind: str, described: Described) -> Row:
    return Row(
        name=described.name,
        kind=kind,
        status=described.status,
        distribution=described.distribution,
        summary=described.summary,
        error=described.error,
        providers=[{"name": p.distribution, "version": p.version} for p in described.providers],
    )


def _plugin_recipe_row(name: str, arch_status: dict[str, Row]) -> Row:
    """A recipe from a plugin package: its own status, then that of its architecture and its settings."""
    row = _plugin_row("recipe", plugin_recipes().describe(name))
    if row.status != OK:
        return row
    if name in load_recipes():
        row.status, row.error = CONFLICT, (f"recipe {name!r} is offered by both recurrent-model-zoo (registry.toml) "
                                           f"and {row.distribution}; uninstall one of them")
        return row
    architecture = plugin_recipes().get(name).architecture
    arch = arch_status.get(architecture)
    if arch is None or arch.status != OK:
        row.status = "broken" if arch is None else arch.status
        row.error = f"its architecture {architecture!r} is " + ("not installed" if arch is None else f"{arch.status}: {arch.error}")
        return row
    try:
        resolve(name)
    except ZooError as exc:
        row.status, row.error = "broken", str(exc)
    return row


def catalog_rows() -> list[Row]:
    """All rows; a broken plugin or recipe becomes a row with its error, never an exception."""
    arch_registry = architectures()
    arch_rows = [_plugin_row("architecture", arch_registry.describe(n)) for n in arch_registry.names()]
    arch_status = {row.name: row for row in arch_rows}
    own = _own_distribution()
    rows = []
    for recipe in load_recipes().values():
        arch = arch_status.get(recipe.architecture)
        if arch is None:
            status, error = "broken", f"its architecture {recipe.architecture!r} is not installed"
        elif arch.status != OK:
            status, error = arch.status, f"its architecture {recipe.architecture!r} is {arch.status}: {arch.error}"
        else:
            status, error = OK, None
            try:
                resolve(recipe.name)
            except ZooError as exc:
                status, error = "broken", str(exc)
        rows.append(Row(recipe.name, "recipe", status, f"{own['name']} {own['version']}", recipe.summary, error, [own]))
    rows.extend(_plugin_recipe_row(name, arch_status) for name in plugin_recipes().names())
    rows.extend(arch_rows)
    export_registry = exporters()
    rows.extend(_plugin_row("exporter", export_registry.describe(n)) for n in export_registry.names())
    return rows
