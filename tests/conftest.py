"""Shared fixtures: fake installed distributions for registry tests, small models."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_IMDB = ROOT.parent / "shared" / "datasets" / "imdb"

# Settings that make any recipe train in seconds on the tiny fixtures (and exactly its train.epochs: no
# lengthening to the recipes' train.min_steps on a few hundred texts).
TINY = ["tokenizer.vocab_size=80", "hidden_size=8", "embedding_dim=8", "head_hidden=8", "train.batch_size=16",
        "train.lr=0.02", "train.min_steps=0"]


def tiny_hub_data(tmp_path_factory, train: int, test: int, unsup: int = 0):
    """A module fixture's body: a tiny Hub-layout dataset (with `unsup` unlabelled reviews) and a private ZOO_CACHE
    (seen by subprocesses too)."""
    from imdb_fixtures import write_hub_folder

    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_CACHE", str(root / "cache"))
        yield str(write_hub_folder(root / "hub", train=train, test=test, unsup=unsup))


def clean_error(result: subprocess.CompletedProcess, *phrases: str) -> None:
    """A failed command that printed `Error: ...` with each phrase and no traceback."""
    assert result.returncode != 0, result.stdout
    assert result.stderr.startswith("Error:") or "\nError:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr)


def train_tiny(data: str, out: Path, *exports: list[str], recipe: str = "bilstm") -> Path:
    """A tiny run trained through the CLI (two epochs of TINY), exported once per entry of `exports` (export flags)."""
    trained = run_zoo("train", recipe, "--data", data, "--out", str(out), "--threads", "1",
                      *[f"--set={s}" for s in TINY + ["train.epochs=2"]])
    assert trained.returncode == 0, trained.stderr
    for flags in exports:
        exported = run_zoo("export", str(out), "--threads", "1", *flags)
        assert exported.returncode == 0, exported.stderr
    return out


def make_distribution(site: Path, name: str, version: str, modules: dict[str, str],
                      architectures: dict[str, str] = {}, exporters: dict[str, str] = {},
                      recipes: dict[str, str] = {}) -> None:
    """Write an installed distribution (dist-info + modules) into `site`, as pip would."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, entries in (("zoo.architectures", architectures), ("zoo.exporters", exporters), ("zoo.recipes", recipes)):
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
    import zoo.registry.discovery

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("ZOO_DISABLE_PLUGINS", raising=False)
    monkeypatch.setattr(zoo.registry.discovery, "_registries", {})
    return site


def build_wheel(source: Path, out: Path) -> Path:
    """pip wheel a project folder (no deps, no build isolation: offline and fast)."""
    before = set(out.glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
                   check=True, capture_output=True)
    (made,) = set(out.glob("*.whl")) - before
    return made


def make_venv(where: Path, wheels: list[Path]) -> Path:
    """A fresh venv with `wheels` installed (no deps); the dependencies (torch, ...) come from this
    environment's site-packages, appended after the venv's own. Returns the venv's bin folder."""
    import sysconfig
    import venv

    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python"
    site = subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   text=True).strip()
    (Path(site) / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                        *map(str, wheels)], check=True, capture_output=True)
    return where / "bin"


@pytest.fixture(scope="session")
def zoo_wheel(tmp_path_factory) -> Path:
    return build_wheel(ROOT, tmp_path_factory.mktemp("zoo-wheel"))
