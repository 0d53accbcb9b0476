"""The dependency set resolves to wheels (nothing built from source) on every supported Python and platform.

`uv pip compile --no-build` resolves pyproject.toml's dependencies for a target Python version and platform,
markers evaluated for that target (pip's own `--python-version` evaluates them for the running interpreter), from
the package index alone. A pin that drops a Python version or a platform fails here, not on a user's machine.
"""

import os
import shutil
import subprocess
import sys
import tomllib

import conftest
import pytest

PYTHONS = ("3.11", "3.12", "3.13", "3.14")
PLATFORMS = {  # uv's names for the platforms torch ships CPU wheels for
    "linux-x86_64": "x86_64-manylinux_2_28",
    "linux-aarch64": "aarch64-manylinux_2_28",
    "macos-arm64": "aarch64-apple-darwin",
    "windows-x86_64": "x86_64-pc-windows-msvc",
}


def uv() -> str:
    found = shutil.which("uv", path=os.path.dirname(sys.executable)) or shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed (it comes with the test extra: pip install -e '.[test]')")
    return found


def dependencies() -> list[str]:
    return tomllib.loads((conftest.ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def test_requires_python_names_the_versions_checked_here():
    from packaging.specifiers import SpecifierSet

    supported = SpecifierSet(tomllib.loads((conftest.ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    assert [v for v in ("3.10", *PYTHONS, "3.15") if v in supported] == list(PYTHONS)


def test_dependencies_resolve_to_wheels_for_every_python_and_platform(tmp_path):
    """All 16 resolutions at once (each waits on the index, not on the CPU); every failure is reported."""
    requirements = tmp_path / "requirements.in"
    requirements.write_text("\n".join(dependencies()) + "\n")
    targets = [(python, platform) for python in PYTHONS for platform in PLATFORMS]
    # a cache folder each: uv locks its cache, which would run them one after the other
    env = lambda n: {**os.environ, "MACOSX_DEPLOYMENT_TARGET": "14.0",  # noqa: E731 (torch 2.13 needs macOS 14)
                     "UV_CACHE_DIR": str(tmp_path / f"uv-cache-{n}")}
    processes = {target: subprocess.Popen([uv(), "pip", "compile", str(requirements), "--python-version", target[0],
                                           "--python-platform", PLATFORMS[target[1]], "--no-build", "--quiet",
                                           "--no-header", "--index-url", "https://pypi.org/simple"],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(n))
                 for n, target in enumerate(targets)}
    failures, resolved = [], {}
    for (python, platform), process in processes.items():
        out, err = process.communicate(timeout=600)
        if process.returncode != 0:
            failures.append(f"Python {python} on {platform}: {err[-1500:]}")
            continue
        resolved[python, platform] = {line.split("==")[0].lower() for line in out.splitlines()
                                      if "==" in line and not line.startswith(" ")}
    assert not failures, "\n\n".join(failures)
    for (python, platform), names in resolved.items():
        assert {"torch", "onnxruntime", "sentencepiece", "datasets", "onnx"} <= names, (python, platform, names)
        assert ("onnxruntime-extensions" in names) == (python != "3.14"), (python, platform)  # no 3.14 wheels yet
