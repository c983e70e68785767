"""Tests for ngc_adex.modules, the loader for ngc-learn's legacy modules.json."""
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from ngc_adex import modules as modmod
from ngc_adex.modules import (
    DEFAULT_MODULES_PATH,
    AmbiguousModuleError,
    ModuleRegistry,
    ModulesFileError,
    UnknownModuleError,
    load_modules,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
REPO_MODULES = REPO_ROOT / "json_files" / "modules.json"
REPO_CONFIG = REPO_ROOT / "json_files" / "config.json"


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    """A throw-away package on sys.path with two different classes named ``Cell``
    (in ``<pkg>.alpha`` and ``<pkg>.beta``), a re-export of alpha's ``Cell`` at the
    package top level, and a submodule that raises when imported."""
    root = tmp_path_factory.mktemp("modpkg")
    name = "ngcadex_modtest_" + uuid.uuid4().hex[:8]
    d = root / name
    d.mkdir()
    (d / "__init__.py").write_text("from .alpha import Cell\n")
    (d / "alpha.py").write_text(textwrap.dedent("""
        class Cell:
            pass

        class Synapse:
            pass

        def helper():
            return 42
    """))
    (d / "beta.py").write_text("class Cell:\n    pass\n")
    (d / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    sys.path.insert(0, str(root))
    try:
        yield name
    finally:
        sys.path.remove(str(root))
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def _write(tmp_path, data, name="modules.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _entries(pkg):
    return [
        {"absolute_path": f"{pkg}.alpha",
         "attributes": [{"name": "Cell", "keywords": ["acell", "alpha_cell"]},
                        {"name": "Synapse", "keywords": ["syn"]},
                        {"name": "helper"}]},
        {"absolute_path": f"{pkg}.beta",
         "attributes": [{"name": "Cell", "keywords": ["bcell"]}]},
    ]


# --------------------------------------------------------------------------- resolution

def test_resolve_by_bare_name_full_path_and_keyword(pkg, tmp_path):
    import importlib
    alpha = importlib.import_module(f"{pkg}.alpha")
    beta = importlib.import_module(f"{pkg}.beta")
    reg = load_modules(_write(tmp_path, _entries(pkg)))

    assert isinstance(reg, ModuleRegistry)
    assert len(reg) == 4
    # bare names (unique ones)
    assert reg.resolve("Synapse") is alpha.Synapse
    assert reg.resolve("helper") is alpha.helper
    # full paths
    assert reg.resolve(f"{pkg}.alpha.Cell") is alpha.Cell
    assert reg.resolve(f"{pkg}.beta.Cell") is beta.Cell
    assert reg.resolve(f"{pkg}.alpha.Synapse") is alpha.Synapse
    # keywords
    assert reg.resolve("acell") is alpha.Cell
    assert reg.resolve("alpha_cell") is alpha.Cell
    assert reg.resolve("bcell") is beta.Cell
    assert reg.resolve("syn") is alpha.Synapse
    # __getitem__ is resolve
    assert reg["acell"] is alpha.Cell
    assert reg[f"{pkg}.beta.Cell"] is beta.Cell
    # keywords are optional
    assert reg.resolve(f"{pkg}.alpha.helper")() == 42


def test_names_and_contains(pkg, tmp_path):
    reg = load_modules(_write(tmp_path, _entries(pkg)))
    names = reg.names()
    assert names == sorted(names)
    for n in ("Synapse", "helper", "acell", "alpha_cell", "bcell", "syn",
              f"{pkg}.alpha.Cell", f"{pkg}.beta.Cell", f"{pkg}.alpha.helper"):
        assert n in names
        assert n in reg
    # the ambiguous bare name is neither listed nor "in" the registry
    assert "Cell" not in names
    assert "Cell" not in reg
    assert reg.ambiguous_names() == ["Cell"]
    assert "nothing" not in reg
    assert 3 not in reg
    assert reg.full_paths()[0] == f"{pkg}.alpha.Cell"


def test_lookup_is_exact_and_case_sensitive(pkg, tmp_path):
    reg = load_modules(_write(tmp_path, _entries(pkg)))
    for wrong in ("ACELL", "Acell", "synapse", "SYN", f"{pkg}.ALPHA.Cell", " syn", "alpha"):
        assert wrong not in reg
        with pytest.raises(UnknownModuleError) as ei:
            reg.resolve(wrong)
        assert repr(wrong) in str(ei.value) or wrong in str(ei.value)
        assert str(tmp_path / "modules.json") in str(ei.value)
    # the message suggests the correctly-cased name
    with pytest.raises(KeyError, match="did you mean 'acell'"):
        reg["ACELL"]
    with pytest.raises(TypeError):
        reg.resolve(None)


def test_bare_name_shared_by_two_objects_is_ambiguous(pkg, tmp_path):
    reg = load_modules(_write(tmp_path, _entries(pkg)))
    with pytest.raises(AmbiguousModuleError) as ei:
        reg.resolve("Cell")
    msg = str(ei.value)
    assert "ambiguous" in msg
    assert f"{pkg}.alpha.Cell" in msg and f"{pkg}.beta.Cell" in msg
    assert "full path" in msg and "keyword" in msg
    assert "'acell'" in msg and "'bcell'" in msg
    with pytest.raises(LookupError):
        reg["Cell"]


def test_same_object_under_two_paths_is_not_ambiguous(pkg, tmp_path):
    import importlib
    alpha = importlib.import_module(f"{pkg}.alpha")
    data = [{"absolute_path": pkg, "attributes": [{"name": "Cell", "keywords": ["top"]}]},
            {"absolute_path": f"{pkg}.alpha", "attributes": [{"name": "Cell"}]}]
    reg = load_modules(_write(tmp_path, data))
    assert reg.resolve("Cell") is alpha.Cell
    assert reg.resolve(f"{pkg}.Cell") is alpha.Cell
    assert reg.resolve("top") is alpha.Cell
    assert reg.ambiguous_names() == []


def test_empty_list_gives_empty_registry(tmp_path):
    reg = load_modules(_write(tmp_path, []))
    assert len(reg) == 0 and reg.names() == []
    with pytest.raises(UnknownModuleError):
        reg.resolve("anything")


def test_accepts_str_and_pathlike(pkg, tmp_path):
    path = _write(tmp_path, _entries(pkg))
    assert load_modules(str(path)).names() == load_modules(path).names()


# --------------------------------------------------------------------------- file errors

def test_missing_file(tmp_path):
    missing = tmp_path / "nope" / "modules.json"
    with pytest.raises(ModulesFileError, match="does not exist") as ei:
        load_modules(missing)
    assert str(missing) in str(ei.value)
    assert ei.value.path == str(missing)
    assert isinstance(ei.value, ValueError)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ModulesFileError, match="is a directory") as ei:
        load_modules(tmp_path)
    assert str(tmp_path) in str(ei.value)


@pytest.mark.parametrize("text", ["", "[", "{\"a\": }", "[{'absolute_path': 'x'}]", "nan nan"])
def test_malformed_json(tmp_path, text):
    path = _write(tmp_path, text)
    with pytest.raises(ModulesFileError, match="malformed JSON") as ei:
        load_modules(path)
    assert str(path) in str(ei.value)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "modules.json"
    path.write_bytes(b"[\xff\xfe]")
    with pytest.raises(ModulesFileError) as ei:
        load_modules(path)
    assert str(path) in str(ei.value)


@pytest.mark.parametrize("data, fragment", [
    ({"absolute_path": "json", "attributes": []}, "top level"),
    (json.dumps("just a string"), "top level"),
    ([["json"]], "entry 0"),
    ([{"attributes": []}], "missing key 'absolute_path'"),
    ([{"absolute_path": "json"}], "missing key 'attributes'"),
    ([{"absolute_path": 3, "attributes": []}], "'absolute_path' must be a non-empty string"),
    ([{"absolute_path": "", "attributes": []}], "'absolute_path' must be a non-empty string"),
    ([{"absolute_path": "json", "attributes": {"name": "loads"}}], "'attributes' must be a list"),
    ([{"absolute_path": "json", "attributes": ["loads"]}], "attribute 0"),
    ([{"absolute_path": "json", "attributes": [{"keywords": ["x"]}]}], "missing key 'name'"),
    ([{"absolute_path": "json", "attributes": [{"name": 5}]}], "'name' must be a non-empty string"),
    ([{"absolute_path": "json", "attributes": [{"name": "loads", "keywords": "ld"}]}],
     "'keywords' must be a list"),
    ([{"absolute_path": "json", "attributes": [{"name": "loads", "keywords": ["ok", 1]}]}],
     "every keyword must be a non-empty string"),
    ([{"absolute_path": "json", "attributes": [{"name": "loads", "keywords": [""]}]}],
     "every keyword must be a non-empty string"),
])
def test_wrong_structure(tmp_path, data, fragment):
    path = _write(tmp_path, data)
    with pytest.raises(ModulesFileError) as ei:
        load_modules(path)
    assert fragment in str(ei.value)
    assert str(path) in str(ei.value)


def test_module_that_does_not_exist(tmp_path):
    name = "ngcadex_no_such_module_" + uuid.uuid4().hex[:8]
    path = _write(tmp_path, [{"absolute_path": name, "attributes": [{"name": "X"}]}])
    with pytest.raises(ModulesFileError, match="cannot import module") as ei:
        load_modules(path)
    assert f"'{name}'" in str(ei.value)
    assert str(path) in str(ei.value)
    assert isinstance(ei.value.__cause__, ImportError)


def test_module_that_raises_on_import(pkg, tmp_path):
    path = _write(tmp_path, [{"absolute_path": f"{pkg}.broken", "attributes": [{"name": "X"}]}])
    with pytest.raises(ModulesFileError) as ei:
        load_modules(path)
    msg = str(ei.value)
    assert f"'{pkg}.broken'" in msg and "boom at import" in msg and str(path) in msg


def test_attribute_the_module_lacks(pkg, tmp_path):
    path = _write(tmp_path, [{"absolute_path": f"{pkg}.alpha",
                              "attributes": [{"name": "Cell"}, {"name": "NoSuchCell"}]}])
    with pytest.raises(ModulesFileError) as ei:
        load_modules(path)
    msg = str(ei.value)
    assert f"module '{pkg}.alpha' has no attribute 'NoSuchCell'" in msg
    assert str(path) in msg


def test_duplicate_keyword_across_entries(pkg, tmp_path):
    data = [{"absolute_path": f"{pkg}.alpha", "attributes": [{"name": "Cell", "keywords": ["c"]}]},
            {"absolute_path": f"{pkg}.beta", "attributes": [{"name": "Cell", "keywords": ["c"]}]}]
    path = _write(tmp_path, data)
    with pytest.raises(ModulesFileError) as ei:
        load_modules(path)
    msg = str(ei.value)
    assert "keyword 'c'" in msg and f"{pkg}.alpha.Cell" in msg and f"{pkg}.beta.Cell" in msg
    assert str(path) in msg


def test_repeated_keyword_within_one_attribute_is_harmless(pkg, tmp_path):
    data = [{"absolute_path": f"{pkg}.alpha",
             "attributes": [{"name": "Synapse", "keywords": ["s", "s"]}]}]
    assert "s" in load_modules(_write(tmp_path, data))


def test_duplicate_full_path(pkg, tmp_path):
    data = [{"absolute_path": f"{pkg}.alpha", "attributes": [{"name": "Cell"}]},
            {"absolute_path": f"{pkg}.alpha", "attributes": [{"name": "Cell"}]}]
    path = _write(tmp_path, data)
    with pytest.raises(ModulesFileError, match="listed more than once") as ei:
        load_modules(path)
    assert f"{pkg}.alpha.Cell" in str(ei.value)


def test_keyword_shadowing_another_bare_name(pkg, tmp_path):
    data = [{"absolute_path": f"{pkg}.alpha", "attributes": [{"name": "Synapse", "keywords": ["Cell"]}]},
            {"absolute_path": f"{pkg}.beta", "attributes": [{"name": "Cell"}]}]
    with pytest.raises(ModulesFileError, match="bare name"):
        load_modules(_write(tmp_path, data))


# --------------------------------------------------------------------------- which file

def test_config_section_route(pkg, tmp_path, monkeypatch):
    path = _write(tmp_path, _entries(pkg), name="configured.json")
    asked = []

    def fake_get_config(name):
        asked.append(name)
        return {"module_path": str(path)}

    monkeypatch.setattr(modmod, "get_config", fake_get_config)
    monkeypatch.chdir(tmp_path)  # no json_files/ here: the config must win
    reg = load_modules()
    assert asked == ["modules"]
    assert reg.path == str(path)
    assert "acell" in reg
    # an explicit path beats the config
    other = _write(tmp_path, [], name="other.json")
    assert len(load_modules(other)) == 0


def test_config_section_relative_path_is_cwd_relative(pkg, tmp_path, monkeypatch):
    (tmp_path / "cfgdir").mkdir()
    _write(tmp_path / "cfgdir", _entries(pkg), name="mods.json")
    monkeypatch.setattr(modmod, "get_config", lambda name: {"module_path": "cfgdir/mods.json"})
    monkeypatch.chdir(tmp_path)
    assert "bcell" in load_modules()


def test_config_section_pointing_at_missing_file(tmp_path, monkeypatch):
    monkeypatch.setattr(modmod, "get_config", lambda name: {"module_path": "gone.json"})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModulesFileError) as ei:
        load_modules()
    assert "gone.json" in str(ei.value) and "config" in str(ei.value)


@pytest.mark.parametrize("section", [None, {}, {"module_path": None}, {"other": 1}])
def test_default_route(pkg, tmp_path, monkeypatch, section):
    monkeypatch.setattr(modmod, "get_config", lambda name: section)
    (tmp_path / "json_files").mkdir()
    _write(tmp_path / "json_files", _entries(pkg))
    monkeypatch.chdir(tmp_path)
    reg = load_modules()
    assert reg.path == DEFAULT_MODULES_PATH
    assert "syn" in reg


def test_default_route_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(modmod, "get_config", lambda name: None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModulesFileError, match="does not exist") as ei:
        load_modules()
    assert DEFAULT_MODULES_PATH in str(ei.value)


@pytest.mark.parametrize("section", [["a.json"], 7, {"module_path": 3}])
def test_bad_config_section(tmp_path, monkeypatch, section):
    monkeypatch.setattr(modmod, "get_config", lambda name: section)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModulesFileError, match="'modules' section"):
        load_modules()


def test_uses_public_ngcsimlib_get_config():
    import ngcsimlib
    assert modmod.get_config is ngcsimlib.get_config


# --------------------------------------------------------------------------- repository files

def _repo_ngclearn_registry(tmp_path):
    """The repository's modules.json without the ngc_adex entries (loadable even
    while ngc_adex's own exports are being written)."""
    data = json.loads(REPO_MODULES.read_text())
    data = [e for e in data if e["absolute_path"].split(".")[0] != "ngc_adex"]
    return load_modules(_write(tmp_path, data))


def test_repo_ngclearn_entries(tmp_path):
    from ngclearn import components as C
    from ngclearn.components.neurons.spiking import adExCell

    reg = _repo_ngclearn_registry(tmp_path)
    expected = {"poisson": C.PoissonCell, "bernoulli": C.BernoulliCell, "lif": C.LIFCell,
                "dense": C.DenseSynapse, "stdp": C.TraceSTDPSynapse, "trace": C.VarTrace,
                "ngclearn_adex": adExCell.AdExCell}
    for kw, cls in expected.items():
        assert reg.resolve(kw) is cls
    assert reg.resolve("ngclearn.components.LIFCell") is C.LIFCell
    assert reg.resolve("ngclearn.components.neurons.spiking.adExCell.AdExCell") is adExCell.AdExCell


def test_repo_modules_file_resolves_adex():
    import ngc_adex
    import ngclearn.components

    reg = load_modules(REPO_MODULES)
    assert reg.resolve("adex") is ngc_adex.AdExCell
    assert reg.resolve("adex_cell") is ngc_adex.AdExCell
    assert reg.resolve("ngc_adex.AdExCell") is ngc_adex.AdExCell
    assert reg.resolve("ngclearn_adex") is ngclearn.components.AdExCell
    assert ngc_adex.AdExCell is not ngclearn.components.AdExCell
    # the two AdExCell classes share a bare name: it must be refused
    with pytest.raises(AmbiguousModuleError, match="ngc_adex.AdExCell"):
        reg.resolve("AdExCell")


def test_repo_config_points_at_repo_modules_file():
    cfg = json.loads(REPO_CONFIG.read_text())
    module_path = cfg["modules"]["module_path"]
    assert (REPO_ROOT / module_path).resolve() == REPO_MODULES.resolve()
    assert module_path == DEFAULT_MODULES_PATH.replace(os.sep, "/")


@pytest.mark.subprocess
def test_repo_config_is_accepted_by_ngclearn_import():
    """``import ngclearn`` in the repository root reads json_files/config.json;
    the modules section must not break that, and must come back from get_config."""
    code = ("import json, ngclearn\n"
            "from ngcsimlib import get_config\n"
            "from ngclearn.components import LIFCell\n"
            "print(json.dumps(get_config('modules')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "module_path": "json_files/modules.json"}


# --------------------------------------------------------------------------- a circuit

@pytest.mark.slow
def test_build_context_from_resolved_names(tmp_path):
    import jax.numpy as jnp
    from jax import random
    from ngclearn import Context, MethodProcess
    from ngclearn.utils.distribution_generator import DistributionGenerator
    from ngcsimlib.context import contextManager

    reg = _repo_ngclearn_registry(tmp_path)
    Poisson, Dense, LIF = reg.resolve("poisson"), reg.resolve("dense"), reg.resolve("lif")

    n_in, n_out, dt, T = 20, 4, 1., 10
    k0, k1 = random.split(random.PRNGKey(7))
    name = "test_modules_circuit_" + uuid.uuid4().hex[:8]
    try:
        with Context(name):
            inp = Poisson("inp", n_units=n_in, target_freq=500., key=k0)
            W = Dense("W", shape=(n_in, n_out),
                      weight_init=DistributionGenerator.uniform(1., 2.), key=k1)
            z = LIF("z", n_units=n_out, tau_m=20.)
            inp.outputs >> W.inputs
            W.outputs >> z.j
            advance = (MethodProcess("advance") >> inp.advance_state
                       >> W.advance_state >> z.advance_state)
            reset = MethodProcess("reset") >> inp.reset >> W.reset >> z.reset
        reset.run()
        inp.inputs.set(jnp.ones((1, n_in)))
        v0 = jnp.array(z.v.get())
        currents = []
        for i in range(T):
            advance.run(t=i * dt, dt=dt)
            currents.append(jnp.array(z.j.get()))
        currents = jnp.stack(currents)
        assert currents.shape == (T, 1, n_out)
        assert bool(jnp.all(jnp.isfinite(currents)))
        assert float(jnp.max(currents)) > 0.          # the LIF really receives current
        assert not bool(jnp.allclose(z.v.get(), v0))  # ... and its voltage moves
        assert isinstance(z, LIF) and type(z).__name__ == "LIFCell"
    finally:
        contextManager.step_to([])
        contextManager.remove_context(name)
