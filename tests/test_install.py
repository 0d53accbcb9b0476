"""The package works from a wheel installed into a fresh venv outside the checkout."""

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from conftest import ROOT


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True)
    (found,) = out.glob("recurrent_model_zoo-*.whl")
    return found


def test_wheel_layout(wheel):
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "zoo/registry.toml" in names
    assert "zoo/plugins/bilstm.py" in names and "zoo/exporters/__init__.py" in names
    assert not any(n.startswith(("plugins/", "exporters/", "tests/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "bilstm = zoo.plugins.bilstm:architecture" in text


@pytest.mark.slow
def test_wheel_in_fresh_venv(wheel, tmp_path):
    """Install the wheel (no deps) in a new venv that borrows this venv's dependencies, run it elsewhere."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    new_site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # Dependencies (torch, click, ...) come from this environment, appended after the venv's own site-packages.
    (new_site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    where = subprocess.run([str(python), "-c", "import zoo, zoo.recipes; print(zoo.__file__); print(zoo.recipes.registry_path())"],
                           cwd=workdir, capture_output=True, text=True, check=True).stdout.split()
    assert all(p.startswith(str(new_site)) for p in where), where
    listed = subprocess.run([str(env_dir / "bin" / "zoo"), "list", "--json"], cwd=workdir, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    recipes = {r["name"] for r in rows if r["kind"] == "recipe" and r["status"] == "ok"}
    assert {"classic", "peephole", "gru", "bilstm", "bilstm-seed"} <= recipes
    info = subprocess.run([str(env_dir / "bin" / "zoo"), "info", "bilstm-seed", "--json"], cwd=workdir, capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["encoder"]["hidden_size"] == 64
