"""The package works from a wheel installed into a fresh venv outside the checkout."""

import json
import subprocess

import pytest
from conftest import make_venv


def test_wheel_layout(zoo_wheel):
    import zipfile

    names = zipfile.ZipFile(zoo_wheel).namelist()
    assert "zoo/registry.toml" in names
    assert "zoo/plugins/bilstm.py" in names and "zoo/exporters/__init__.py" in names
    assert not any(n.startswith(("plugins/", "exporters/", "tests/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(zoo_wheel).read(entry_points).decode()
    assert "bilstm = zoo.plugins.bilstm:architecture" in text


@pytest.mark.slow
def test_wheel_in_fresh_venv(zoo_wheel, tmp_path):
    """Install the wheel (no deps) in a new venv that borrows this venv's dependencies, run it elsewhere."""
    bin_dir = make_venv(tmp_path / "venv", [zoo_wheel])
    python = bin_dir / "python"
    new_site = str(tmp_path / "venv")
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    where = subprocess.run([str(python), "-c", "import zoo, zoo.config.recipes; print(zoo.__file__); print(zoo.config.recipes.registry_path())"],
                           cwd=workdir, capture_output=True, text=True, check=True).stdout.split()
    assert all(p.startswith(new_site) for p in where), where
    listed = subprocess.run([str(bin_dir / "zoo"), "list", "--json"], cwd=workdir, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    recipes = {r["name"] for r in rows if r["kind"] == "recipe" and r["status"] == "ok"}
    assert {"classic", "peephole", "gru", "bilstm", "bilstm-seed"} <= recipes
    info = subprocess.run([str(bin_dir / "zoo"), "info", "bilstm-seed", "--json"], cwd=workdir, capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["encoder"]["hidden_size"] == 64
