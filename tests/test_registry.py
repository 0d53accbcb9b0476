"""Plugin discovery with real installed-distribution metadata: ok, broken, incompatible, conflict, disabled."""

import json

import pytest
from conftest import make_distribution, run_zoo

from zoo.errors import ConfigError, PluginError, UnknownNameError
from zoo.registry.discovery import architectures

GOOD_PLUGIN = """
    from dataclasses import dataclass
    from zoo.contract import Architecture

    @dataclass
    class Hyper:
        hidden_size: int = 4

    def build(hp, input_size):
        from zoo.plugins.encoders import CausalRNNEncoder
        import torch
        return CausalRNNEncoder(torch.nn.RNN(input_size, hp.hidden_size, batch_first=True))

    architecture = Architecture(name="{name}", summary="a tiny Elman RNN", hyperparameters=Hyper, build=build{extra})
"""


def plugin_source(name: str, extra: str = "") -> str:
    return GOOD_PLUGIN.replace("{name}", name).replace("{extra}", extra)


@pytest.fixture
def zoo_of_plugins(fake_site):
    """One good, one broken, one contract-breaking, one incompatible and one conflicting plugin."""
    make_distribution(fake_site, "zoo-elman", "1.2.0", {"zoo_elman": plugin_source("elman")}, {"elman": "zoo_elman:architecture"})
    make_distribution(fake_site, "zoo-broken", "0.1", {"zoo_broken": "raise ImportError('no module named tensorflow')"},
                      {"broken": "zoo_broken:architecture"})
    make_distribution(fake_site, "zoo-nobuild", "0.1", {"zoo_nobuild": "architecture = object()"}, {"nobuild": "zoo_nobuild:architecture"})
    make_distribution(fake_site, "zoo-future", "3.0", {"zoo_future": plugin_source("future", ", api_version=99")},
                      {"future": "zoo_future:architecture"})
    make_distribution(fake_site, "zoo-shadow", "0.5", {"zoo_shadow": plugin_source("classic")}, {"classic": "zoo_shadow:architecture"})
    return fake_site


def test_statuses(zoo_of_plugins):
    registry = architectures()
    assert set(registry.names()) >= {"elman", "broken", "nobuild", "future", "classic", "gru"}
    assert registry.describe("elman").status == "ok"
    assert registry.describe("elman").distribution == "zoo-elman 1.2.0"
    broken = registry.describe("broken")
    assert broken.status == "broken" and "tensorflow" in broken.error
    assert registry.describe("nobuild").status == "broken"
    assert "lacks" in registry.describe("nobuild").error
    future = registry.describe("future")
    assert future.status == "incompatible" and "99" in future.error
    conflict = registry.describe("classic")
    assert conflict.status == "conflict"
    assert "recurrent-model-zoo" in conflict.error and "zoo-shadow" in conflict.error
    assert registry.describe("gru").status == "ok"  # others unaffected


def test_using_a_bad_plugin_names_its_distribution(zoo_of_plugins):
    registry = architectures()
    with pytest.raises(PluginError, match="zoo-broken 0.1"):
        registry.get("broken")
    with pytest.raises(PluginError, match="zoo-shadow"):
        registry.get("classic")
    with pytest.raises(UnknownNameError, match="available: .*gru"):
        registry.get("nope")


def test_listing_does_not_import_unused_plugins(fake_site):
    import sys

    make_distribution(fake_site, "zoo-lazy", "1.0", {"zoo_lazy_mod": plugin_source("lazy")}, {"lazy": "zoo_lazy_mod:architecture"})
    assert "lazy" in architectures().names()
    assert "zoo_lazy_mod" not in sys.modules
    architectures().get("lazy")
    assert "zoo_lazy_mod" in sys.modules


def test_cli_list_survives_bad_plugins(zoo_of_plugins):
    result = run_zoo("list", "--json", site=zoo_of_plugins)
    assert result.returncode == 0, result.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    assert rows[("architecture", "elman")]["status"] == "ok"
    assert rows[("architecture", "elman")]["distribution"] == "zoo-elman 1.2.0"
    assert rows[("architecture", "broken")]["status"] == "broken"
    assert rows[("architecture", "future")]["status"] == "incompatible"
    assert rows[("architecture", "classic")]["status"] == "conflict"
    assert rows[("recipe", "classic")]["status"] == "conflict"  # the recipe's architecture is ambiguous
    assert rows[("recipe", "bilstm")]["status"] == "ok"
    for row in rows.values():
        assert set(row) >= {"name", "kind", "status", "distribution", "summary", "error"}
        assert (row["error"] is None) == (row["status"] == "ok")


def test_cli_info_on_broken_plugin_is_a_clean_error(zoo_of_plugins):
    result = run_zoo("info", "broken", site=zoo_of_plugins)
    assert result.returncode != 0
    assert result.stderr.startswith("Error: ") and "zoo-broken" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_zoo("info", "elman", site=zoo_of_plugins).returncode == 0
    assert run_zoo("info", "gru", site=zoo_of_plugins).returncode == 0


def test_disable_plugins_hides_third_party(zoo_of_plugins):
    result = run_zoo("list", "--json", site=zoo_of_plugins, env={"ZOO_DISABLE_PLUGINS": "1"})
    assert result.returncode == 0, result.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    assert ("architecture", "elman") not in rows and ("architecture", "broken") not in rows
    assert rows[("architecture", "classic")]["status"] == "ok"  # no conflict without the third party
    assert {n for k, n in rows if k == "architecture"} == {"classic", "peephole", "gru", "bilstm"}


def test_unknown_name_is_a_clean_error():
    result = run_zoo("info", "transformer")
    assert result.returncode != 0
    assert "Error: unknown recipe or architecture 'transformer'" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_override_is_a_clean_error():
    for bad in ("train.lr=fast", "nosuchkey=1", "train.nosuch=1", "hidden_size=-3", "pooling=sum"):
        result = run_zoo("info", "bilstm", "--set", bad)
        assert result.returncode != 0, bad
        assert result.stderr.startswith("Error: "), (bad, result.stderr)


def test_help_and_list_import_no_heavy_library():
    import subprocess
    import sys

    code = (
        "import sys\nfrom zoo.cli import main\n"
        "try:\n    main([{args}])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'datasets', 'sentencepiece') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    for args in ("'--help'", "'list'"):
        result = subprocess.run([sys.executable, "-c", code.format(args=args)], capture_output=True, text=True)
        assert "HEAVY []" in result.stderr, result.stderr


RECIPES = """
    lm = {"architecture": "elman", "summary": "every section a registry.toml recipe may have",
          "encoder": {"hidden_size": 6}, "classifier": {"embedding_dim": 12}, "tokenizer": {"vocab_size": 300},
          "train": {"epochs": 2}, "pretrain": {"samples": 64, "output_dropout": 0.2}}
    odd = {"architecture": "elman", "serve": {"port": 1}}
"""


def test_a_plugin_recipe_may_carry_every_section_a_built_in_one_may(fake_site):
    make_distribution(fake_site, "zoo-elman", "1.2.0", {"zoo_elman": plugin_source("elman"), "zoo_elman_recipes": RECIPES},
                      {"elman": "zoo_elman:architecture"},
                      recipes={"elman-lm": "zoo_elman_recipes:lm", "elman-odd": "zoo_elman_recipes:odd"})
    rows = {row["name"]: row for row in json.loads(run_zoo("list", "--json", site=fake_site).stdout)}
    assert rows["elman-lm"]["status"] == "ok", rows["elman-lm"]
    assert rows["elman-odd"]["status"] == "broken" and "unknown key(s) serve" in rows["elman-odd"]["error"]
    info = json.loads(run_zoo("info", "elman-lm", "--json", site=fake_site).stdout)
    assert info["pretrain"]["samples"] == 64 and info["pretrain"]["output_dropout"] == 0.2
    assert info["summary"] == "every section a registry.toml recipe may have"
    bare = json.loads(run_zoo("info", "elman", "--json", site=fake_site).stdout)
    assert bare["summary"] == "a tiny Elman RNN"  # an architecture's own summary


def test_a_recipes_small_data_settings_are_checked_and_shown():
    from zoo.config.recipes import recipe_from_table

    with pytest.raises(ConfigError, match="small_data must be a table of sections"):
        recipe_from_table("odd", {"architecture": "gru", "small_data": {"dropout": 0.5}}, "test")
    recipe = recipe_from_table("ok", {"architecture": "gru", "small_data": {"classifier": {"word_dropout": 0.2}}}, "t")
    assert recipe.small_data == {"classifier": {"word_dropout": 0.2}}
    info = json.loads(run_zoo("info", "gru", "--json").stdout)
    assert info["small_data"] == {"classifier.embedding_dropout": 0.5, "classifier.word_dropout": 0.2}
    mine = json.loads(run_zoo("info", "gru", "--set", "classifier.word_dropout=0.2", "--json").stdout)
    assert mine["small_data"] == {"classifier.embedding_dropout": 0.5}  # what the user set is theirs
