"""Third-party plugin packages as real wheels in a temporary venv: the example trains and exports;
broken, contract-breaking, incompatible and conflicting ones are isolated; exporters are plugins too."""

import json
import os
import subprocess
import textwrap
from pathlib import Path

import conftest
import pytest
from conftest import ROOT, build_wheel, make_venv
from imdb_fixtures import write_hub_folder

TINY = conftest.TINY + ["train.epochs=1"]
OBJECTS = {"zoo.architectures": "architecture", "zoo.exporters": "exporter", "zoo.recipes": "recipe"}

BAD_PACKAGES = {
    "zoo-broken-import": ("zoo_broken_import", "import tensorflow_that_is_not_installed\n", "broken"),
    "zoo-no-build": ("zoo_no_build", textwrap.dedent("""
        from dataclasses import dataclass
        @dataclass
        class Hyper:
            size: int = 4
        class NotAnArchitecture:
            name, summary, hyperparameters = "nobuild", "forgot build", Hyper
        architecture = NotAnArchitecture()
    """), "nobuild"),
    "zoo-from-the-future": ("zoo_from_the_future", textwrap.dedent("""
        from zoo.contract import Architecture
        from zoo_resgru import build, ResGRUHyperparameters
        architecture = Architecture(name="future", summary="API 99", hyperparameters=ResGRUHyperparameters,
                                    build=build, api_version=99)
    """), "future"),
    "zoo-shadow-classic": ("zoo_shadow_classic", textwrap.dedent("""
        from zoo.contract import Architecture
        from zoo_resgru import build, ResGRUHyperparameters
        architecture = Architecture(name="classic", summary="not the real one", hyperparameters=ResGRUHyperparameters,
                                    build=build)
    """), "classic"),
}

NPZ_EXPORTER = textwrap.dedent('''
    """Exports a run's best weights as a numpy .npz archive."""
    from zoo.contract import Exporter

    def export(run_dir, output=None, **options):
        from pathlib import Path
        import numpy as np
        import torch
        state = torch.load(Path(run_dir) / "model.pt", weights_only=True)
        path = Path(output) if output else Path(run_dir) / "weights.npz"
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
        return {"path": str(path), "passed": True, "arrays": len(state)}

    exporter = Exporter(name="npz", summary="weights as a numpy archive", export=export)
''')


CLASHING_RECIPE = textwrap.dedent('''
    recipe = {"architecture": "gru", "summary": "a plugin recipe named like a built-in one"}
''')


def write_package(root: Path, dist: str, module: str, source: str, group: str, name: str) -> Path:
    folder = root / dist
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{dist}"
        version = "0.3.0"
        [project.entry-points."{group}"]
        {name} = "{module}:{OBJECTS[group]}"
        [tool.setuptools]
        py-modules = ["{module}"]
    """))
    (folder / f"{module}.py").write_text(source)
    return folder


@pytest.fixture(scope="module")
def plugin_venv(zoo_wheel, tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    wheels = root / "wheels"
    wheels.mkdir()
    built = [zoo_wheel, build_wheel(ROOT / "examples" / "zoo-resgru", wheels), build_wheel(ROOT / "examples" / "zoo-mgu", wheels)]
    for dist, (module, source, name) in BAD_PACKAGES.items():
        built.append(build_wheel(write_package(root / "src", dist, module, source, "zoo.architectures", name), wheels))
    built.append(build_wheel(write_package(root / "src", "zoo-npz", "zoo_npz", NPZ_EXPORTER, "zoo.exporters", "npz"), wheels))
    built.append(build_wheel(write_package(root / "src", "zoo-recipe-clash", "zoo_recipe_clash", CLASHING_RECIPE,
                                           "zoo.recipes", "bilstm"), wheels))
    bin_dir = make_venv(root / "venv", built)
    data = write_hub_folder(root / "data", train=300, test=60)
    return bin_dir, str(data), root


def zoo(plugin_venv, *args, env=None):
    bin_dir, _, root = plugin_venv
    full_env = {k: v for k, v in os.environ.items() if k != "ZOO_DISABLE_PLUGINS"}
    full_env |= {"ZOO_CACHE": str(root / "cache")} | (env or {})
    return subprocess.run([str(bin_dir / "zoo"), *args], capture_output=True, text=True, env=full_env, cwd=root,
                          timeout=600)


def test_list_shows_every_plugin_with_its_status(plugin_venv):
    result = zoo(plugin_venv, "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    assert rows[("architecture", "resgru")]["status"] == "ok"
    assert rows[("architecture", "resgru")]["distribution"] == "zoo-resgru 0.1.0"
    assert rows[("architecture", "broken")]["status"] == "broken"
    assert "tensorflow_that_is_not_installed" in rows[("architecture", "broken")]["error"]
    assert rows[("architecture", "nobuild")]["status"] == "broken"
    assert rows[("architecture", "future")]["status"] == "incompatible"
    conflict = rows[("architecture", "classic")]
    assert conflict["status"] == "conflict"
    assert "recurrent-model-zoo" in conflict["error"] and "zoo-shadow-classic" in conflict["error"]
    assert rows[("exporter", "npz")]["status"] == "ok" and rows[("exporter", "onnx")]["status"] == "ok"


@pytest.mark.parametrize("name,distribution", [("broken", "zoo-broken-import"), ("nobuild", "zoo-no-build"),
                                                ("future", "zoo-from-the-future"), ("classic", "zoo-shadow-classic")])
def test_training_a_bad_plugin_fails_cleanly_naming_its_distribution(plugin_venv, name, distribution):
    _, data, _ = plugin_venv
    result = zoo(plugin_venv, "train", name, "--data", data)
    assert result.returncode != 0
    assert result.stderr.startswith("Error:") and distribution in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert zoo(plugin_venv, "info", "gru").returncode == 0  # every other command still works


def test_disable_plugins_hides_third_parties(plugin_venv):
    result = zoo(plugin_venv, "list", "--json", env={"ZOO_DISABLE_PLUGINS": "1"})
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    assert ("architecture", "resgru") not in rows and ("exporter", "npz") not in rows
    assert rows[("architecture", "classic")]["status"] == "ok"
    assert "ZOO_DISABLE_PLUGINS" in zoo(plugin_venv, "info", "resgru", env={"ZOO_DISABLE_PLUGINS": "1"}).stderr


def test_example_plugin_trains_exports_and_predicts(plugin_venv):
    _, data, root = plugin_venv
    run = root / "runs" / "resgru"
    trained = zoo(plugin_venv, "train", "resgru", "--data", data, "--out", str(run), "--threads", "1",
                  *[f"--set={s}" for s in TINY], "--json")
    assert trained.returncode == 0, trained.stderr
    assert 0 <= json.loads(trained.stdout.splitlines()[-1])["test_accuracy"] <= 1
    exported = zoo(plugin_venv, "export", str(run), "--format", "onnx", "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["passed"]
    predicted = zoo(plugin_venv, "predict", str(run / "model.onnx"), "wonderful superb", "--json")
    assert predicted.returncode == 0 and json.loads(predicted.stdout)["label"] in ("pos", "neg")
    text = zoo(plugin_venv, "export", str(run), "--format", "onnx", "--with-tokenizer", "--json")  # torch.onnx path + front end
    assert text.returncode == 0, text.stderr
    assert json.loads(text.stdout)["passed"] and json.loads(text.stdout)["input"] == "text"
    npz = zoo(plugin_venv, "export", str(run), "--format", "npz", "--json")
    assert npz.returncode == 0, npz.stderr
    assert json.loads(npz.stdout)["passed"] and (run / "weights.npz").is_file()
    unknown = zoo(plugin_venv, "export", str(run), "--format", "tflite")
    assert unknown.returncode != 0 and "npz" in unknown.stderr and "onnx" in unknown.stderr


@pytest.mark.parametrize("example", ["zoo-resgru", "zoo-mgu"])
def test_example_plugin_passes_its_own_contract_suite(plugin_venv, example):
    bin_dir, _, root = plugin_venv
    result = subprocess.run([str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(ROOT / "examples" / example / "tests")], capture_output=True, text=True, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_loop_plugin_without_lowering_fails_export_with_a_clear_error(tmp_path, monkeypatch):
    """A Python loop over time traces to one length under torch.onnx: validation must catch it."""
    from dataclasses import dataclass

    import torch
    from torch import nn

    from zoo import testing
    from zoo.contract import Architecture
    from zoo.errors import ExportError

    class LoopRNN(nn.Module):
        bidirectional = False

        def __init__(self, size):
            super().__init__()
            self.cell, self.output_size = nn.RNNCell(size, 4), 4

        def forward(self, x, lengths):
            h, out = x.new_zeros(x.shape[0], 4), []
            for t in range(x.shape[1]):
                h = self.cell(x[:, t], h)
                out.append(h)
            valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]
            return torch.stack(out, 1) * valid.unsqueeze(-1)

    @dataclass
    class Hyper:
        size: int = 4

    loop = Architecture("loop", "python loop", Hyper, lambda hp, size: LoopRNN(size))
    testing.assert_padding_exact(loop)
    with pytest.raises((ExportError, AssertionError)) as caught:
        testing.assert_onnx_parity(loop)
    assert "native lowering" in str(caught.value) or "differs from PyTorch" in str(caught.value)


def test_cell_plugin_with_its_recipe_trains_exports_and_predicts_both_directions(plugin_venv):
    """examples/zoo-mgu from its wheel: 30 lines of cell code, trained, exported through Scan, served."""
    _, data, root = plugin_venv
    rows = {(r["kind"], r["name"]): r for r in json.loads(zoo(plugin_venv, "list", "--json").stdout)}
    assert rows[("architecture", "mgu")]["status"] == "ok"
    assert rows[("recipe", "mgu-imdb")]["status"] == "ok" and rows[("recipe", "mgu-imdb")]["distribution"] == "zoo-mgu 0.1.0"
    info = json.loads(zoo(plugin_venv, "info", "mgu-imdb", "--json").stdout)
    assert info["encoder"]["hidden_size"] == 96 and info["train"]["epochs"] == 5
    assert info["train"]["max_batch_tokens"] == 32768  # the zoo's defaults fill what the recipe leaves out
    for name, extra in (("forward", []), ("bidirectional", ["--set=encoder.bidirectional=true"])):
        run = root / "runs" / f"mgu-{name}"
        trained = zoo(plugin_venv, "train", "mgu-imdb", "--data", data, "--out", str(run), "--threads", "1",
                      *[f"--set={s}" for s in TINY], *extra, "--json")
        assert trained.returncode == 0, trained.stderr
        for flags in ([], ["--with-tokenizer"], ["--quantize", "int8", "--max-accuracy-drop", "100"]):
            exported = zoo(plugin_venv, "export", str(run), "--format", "onnx", *flags, "--json")
            assert exported.returncode == 0, exported.stderr
            report = json.loads(exported.stdout)
            assert report["passed"] and ("quantization" in report or report["max_abs_diff"] <= 1e-4)
        assert json.loads((run / "config.json").read_text())["config"]["encoder"]["bidirectional"] == (name != "forward")
        texts = ["wonderful superb brilliant", "awful boring dull"]
        from_torch = [json.loads(line) for line in zoo(plugin_venv, "predict", str(run), *texts, "--json").stdout.splitlines()]
        for model in ("model.onnx", "model-text.onnx"):
            served = zoo(plugin_venv, "predict", str(run / model), *texts, "--json")
            assert served.returncode == 0, served.stderr
            assert [json.loads(line)["label"] for line in served.stdout.splitlines()] == [r["label"] for r in from_torch]


def test_bare_architectures_get_default_training_settings_and_recipe_clashes_are_conflicts(plugin_venv):
    info = json.loads(zoo(plugin_venv, "info", "resgru", "--json").stdout)
    assert info["train"]["epochs"] == 6 and info["train"]["schedule"] == "cosine" and info["train"]["max_batch_tokens"] == 32768
    rows = {(r["kind"], r["name"]): r for r in json.loads(zoo(plugin_venv, "list", "--json").stdout)}
    clash = rows[("recipe", "bilstm")]
    assert clash["status"] == "conflict" and "zoo-recipe-clash" in clash["error"]
    used = zoo(plugin_venv, "info", "bilstm")
    assert used.returncode != 0 and "zoo-recipe-clash" in used.stderr and "Traceback" not in used.stderr
    assert zoo(plugin_venv, "info", "gru").returncode == 0
