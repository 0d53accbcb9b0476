"""Shared fixtures: fake installed distributions for registry tests, small models."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_IMDB = ROOT.parent / "shared" / "datasets" / "imdb"


def make_distribution(site: Path, name: str, version: str, modules: dict[str, str],
                      architectures: dict[str, str] = {}, exporters: dict[str, str] = {}) -> None:
    """Write an installed distribution (dist-info + modules) into `site`, as pip would."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, entries in (("zoo.architectures", architectures), ("zoo.exporters", exporters)):
        if entries:
            lines.append(f"[{group}]")
            lines.extend(f"{k} = {v}" for k, v in entries.items())
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


def run_zoo(*args: str, env: dict[str, str] | None = None, site: Path | None = None,
            stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the zoo CLI in a subprocess of this interpreter, with `site` prepended to its path."""
    import os

    full_env = dict(os.environ)
    full_env.pop("ZOO_DISABLE_PLUGINS", None)
    if site is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), full_env.get("PYTHONPATH", "")]))
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], capture_output=True, text=True,
                          env=full_env, input=stdin, cwd=cwd, timeout=600)


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site directory on sys.path for this test, with the registries reset around it."""
    import zoo.registry

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("ZOO_DISABLE_PLUGINS", raising=False)
    monkeypatch.setattr(zoo.registry, "_registries", {})
    return site
