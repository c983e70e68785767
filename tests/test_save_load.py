"""Saving a circuit with ngc_adex.AdExCell cells and continuing it in a fresh Python process.

Poisson encoder -> DenseSynapse -> two AdExCells (heterogeneous per-neuron parameters given as numpy
arrays and as lists; "precise" and "rk4"; refractory) -> DenseSynapse -> LIFCell.  The parent simulates
N steps, saves with ``Context.save_to_json`` and simulates N more; a subprocess loads the saved model with
``Context.load`` and simulates the same N steps: every spike and every AdEx compartment must agree
exactly.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest
import jax
import jax.numpy as jnp
from ngclearn import Context
from ngclearn.components import DenseSynapse, LIFCell, PoissonCell
from ngclearn.utils.distribution_generator import DistributionGenerator as DG
from ngcsimlib.context import contextManager
from ngcsimlib.global_state import stateManager

from conftest import processes, settled_state

import ngc_adex

N = 8                      # every synapse is N x N (new DenseSynapse shapes cost seconds of compilation)
N_STEPS = 120              # steps before and after the save
DT = 0.1
MODEL = "adex_circuit"
ADEX_COMPARTMENTS = ("v", "w", "s", "tols", "t_spike", "ref_left")
CELLS = ("precise", "rk4")

# per-neuron parameters as numpy arrays (v_sharpness = 0: integrate-and-fire limit) ...
PRECISE_KW = dict(
    tau_m=np.linspace(8., 22., N),
    b=np.array([0.5, 1., 2., 0., 3., 0.25, 1.5, 0.75]),
    v_sharpness=np.array([2., 0., 1., 3., 0.5, 2., 0., 1.5]),
    v0=np.array([[-70., -68., -72., -65., -70., -60., -71., -69.]]),   # (batch_size, n_units)
    refract_time=2.0,
    integration_type="precise",
)
# ... and as lists
RK4_KW = dict(
    tau_m=[10., 12., 14., 16., 18., 20., 22., 24.],
    tau_w=[100., 200., 300., 400., 500., 600., 700., 800.],
    v_sharpness=[0., 2., 2., 1., 0., 3., 2., 0.5],
    a=[0.1, 0., 0.2, 0.1, 0.05, 0.1, 0., 0.3],
    refract_time=[2., 0., 1., 2., 0.5, 2., 3., 2.],
    integration_type="rk4",
)

CHILD = textwrap.dedent(r"""
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", sys.argv[6] == "1")
    import numpy as np
    import jax.numpy as jnp
    from ngclearn import Context
    from ngcsimlib.global_state import stateManager
    import ngc_adex

    directory, model, out, n_steps, dt = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    ctx = Context.load(directory, model)
    advance = ctx.get_objects_by_type("process")["advance"]
    rows = jnp.asarray(advance.pack_rows(n_steps, t=lambda i: (n_steps + i + 1) * dt, dt=dt))
    final, watched = advance.scan(rows)
    stateManager.set_state(final)
    arrays = {f"watched{i}": np.asarray(w) for i, w in enumerate(watched)}
    meta = {}
    for name in ("precise", "rk4"):
        cell = ctx.get_components(name)
        meta[name] = {"class": type(cell).__module__ + "." + type(cell).__qualname__,
                      "is_ngc_adex": isinstance(cell, ngc_adex.AdExCell),
                      "integration_type": cell.integration_type}
        for comp in ("v", "w", "s", "tols", "t_spike", "ref_left"):
            arrays[f"{name}.{comp}"] = np.asarray(getattr(cell, comp).get())
        for field, value in cell.params._asdict().items():
            arrays[f"{name}.param.{field}"] = np.asarray(value)
    lif = ctx.get_components("lif")
    arrays["lif.v"] = np.asarray(lif.v.get())
    np.savez(out, **arrays)
    with open(out + ".json", "w") as f:
        json.dump(meta, f)
""")


def _name(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def build(ctx_name):
    """The circuit, its processes ``advance`` / ``reset`` and what ``advance`` watches."""
    k = jax.random.split(jax.random.PRNGKey(11), 4)
    with Context(ctx_name) as ctx:
        inp = PoissonCell("inp", N, target_freq=2500., key=k[0])
        W_in = DenseSynapse("W_in", (N, N), weight_init=DG.uniform(10., 25.), key=k[1])
        precise = ngc_adex.AdExCell("precise", N, **PRECISE_KW)
        rk4 = ngc_adex.AdExCell("rk4", N, **RK4_KW)
        W_out = DenseSynapse("W_out", (N, N), weight_init=DG.uniform(300., 600.), key=k[2])
        lif = LIFCell("lif", N, tau_m=10., refract_time=1., key=k[3])
        inp.outputs >> W_in.inputs
        W_in.outputs >> precise.j
        W_in.outputs >> rk4.j
        precise.s >> W_out.inputs
        W_out.outputs >> lif.j
        advance, reset = processes(inp, W_in, precise, rk4, W_out, lif,
                                   watch=(inp.outputs, precise.s, rk4.s, lif.s, precise.v, rk4.v, precise.t_spike))
    return ctx


def _scan(process, first):
    rows = jnp.asarray(process.pack_rows(N_STEPS, t=lambda i: (first + i + 1) * DT, dt=DT))
    final, watched = process.scan(rows)
    stateManager.set_state(settled_state(final))
    return [np.asarray(w) for w in watched]


def _compartments(ctx):
    out = {}
    for name in CELLS:
        cell = ctx.get_components(name)
        for comp in ADEX_COMPARTMENTS:
            out[f"{name}.{comp}"] = np.asarray(getattr(cell, comp).get())
    out["lif.v"] = np.asarray(ctx.get_components("lif").v.get())
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("saveload")
    ctx = build(_name("saveload"))
    procs = ctx.get_objects_by_type("process")
    advance, reset = procs["advance"], procs["reset"]
    reset.run()
    inp = ctx.get_components("inp")
    inp.inputs.set(jnp.ones((1, N), dtype=inp.inputs.get().dtype))
    stateManager.set_state(settled_state(stateManager.state))

    first = _scan(advance, 0)
    at_save = _compartments(ctx)
    ctx.save_to_json(str(root), MODEL, overwrite=True)
    return {"root": root, "ctx": ctx, "advance": advance, "first": first, "at_save": at_save}


@pytest.fixture(scope="module")
def continued(saved):
    """The saved model loaded and continued in a fresh process while the parent continues uninterrupted."""
    root, advance = saved["root"], saved["advance"]
    out = str(root / "child.npz")
    script = root / "continue_saved.py"
    script.write_text(CHILD)
    x64 = "1" if jax.config.jax_enable_x64 else "0"
    proc = subprocess.Popen([sys.executable, str(script), str(root), MODEL, out, str(N_STEPS), repr(DT), x64],
                            cwd=str(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        second = _scan(advance, N_STEPS)
        at_end = _compartments(saved["ctx"])
    finally:
        try:
            stdout, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            stderr += "\n[killed after 300 s]"
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    child = None
    if proc.returncode == 0:
        with np.load(out) as data:
            child = {k: data[k] for k in data.files}
        with open(out + ".json") as f:
            child["meta"] = json.load(f)
    return dict(saved, second=second, at_end=at_end, child=child, proc=proc)


def _child(saved):
    proc = saved["proc"]
    assert proc.returncode == 0, f"loading/continuing in a fresh process failed:\n{proc.stderr[-4000:]}"
    return saved["child"]


@pytest.mark.subprocess
def test_scenario_exercises_spikes_and_refractoriness(continued):
    """Preconditions: the save happens mid-activity, with refractory neurons."""
    first, second, at_save = continued["first"], continued["second"], continued["at_save"]
    for i, what in ((1, "precise"), (2, "rk4"), (3, "lif")):
        assert first[i].sum() > 0 and second[i].sum() > 0, what
    assert (at_save["precise.ref_left"] > 0).any() or (at_save["rk4.ref_left"] > 0).any()
    assert (at_save["precise.tols"] > 0).sum() >= N // 2 and (at_save["rk4.tols"] > 0).sum() >= N // 2


@pytest.mark.subprocess
def test_continuation_in_fresh_process_is_exact(continued):
    child, second = _child(continued), continued["second"]
    names = ("input spikes", "precise spikes", "rk4 spikes", "lif spikes", "precise v", "rk4 v",
             "precise t_spike")
    assert len([k for k in child if k.startswith("watched")]) == len(names)
    for i, name in enumerate(names):
        np.testing.assert_array_equal(child[f"watched{i}"], second[i], err_msg=name)
    for key, value in continued["at_end"].items():
        assert child[key].dtype == value.dtype, key
        np.testing.assert_array_equal(child[key], value, err_msg=key)


@pytest.mark.subprocess
def test_loaded_cells_are_ngc_adex_with_original_params(continued):
    child, ctx = _child(continued), continued["ctx"]
    for name in CELLS:
        meta = child["meta"][name]
        assert meta["class"] == "ngc_adex.cell.AdExCell" and meta["is_ngc_adex"], meta
        original = ctx.get_components(name)
        assert meta["integration_type"] == original.integration_type
        for field, value in original.params._asdict().items():
            loaded = child[f"{name}.param.{field}"]
            np.testing.assert_array_equal(loaded, np.asarray(value), err_msg=f"{name}.{field}")
            assert loaded.dtype == np.asarray(value).dtype


def test_roots_json_records_module_path_and_lists(saved):
    with open(saved["root"] / MODEL / "component" / "roots.json") as f:
        roots = json.load(f)
    for name, kw in (("precise", PRECISE_KW), ("rk4", RK4_KW)):
        entry = roots[name]
        assert entry["modulePath"] == "ngc_adex.AdExCell"
        assert entry["args"] == [name, N]
        saved_kw = entry["kwargs"]
        assert "key" not in saved_kw
        for arg, value in kw.items():
            expected = value.tolist() if isinstance(value, np.ndarray) else value
            assert saved_kw[arg] == expected, arg
            assert type(saved_kw[arg]) is type(expected), arg
    assert isinstance(roots["precise"]["kwargs"]["v0"][0], list)         # (1, N) array -> nested list
    assert roots["precise"]["kwargs"]["v_sharpness"].count(0.) == 2
    assert roots["lif"]["modulePath"] != "ngc_adex.AdExCell"


def test_saved_npz_holds_adex_state(saved):
    path = saved["root"] / MODEL / "component" / "custom" / "precise.npz"
    with np.load(path) as data:
        stored = {k: data[k] for k in data.files}
    for comp in ADEX_COMPARTMENTS:
        np.testing.assert_array_equal(stored[comp], saved["at_save"][f"precise.{comp}"], err_msg=comp)
    assert "j" not in stored                                     # wired: not state of the cell


def _load_broken_copy(saved, tmp_path, damage):
    """Copies the saved model under a fresh context name, damages precise.npz, loads it in-process."""
    src = saved["root"] / MODEL
    model = _name("broken")
    dst = tmp_path / model
    shutil.copytree(src, dst)
    meta_path = dst / "contextData.json"
    meta = json.loads(meta_path.read_text())
    meta["path"] = model
    meta_path.write_text(json.dumps(meta))
    npz = dst / "component" / "custom" / "precise.npz"
    damage(npz)
    before = contextManager.current_path
    try:
        with pytest.raises((OSError, ValueError)) as err:
            Context.load(str(tmp_path), model)
    finally:
        if contextManager.current_path != before:
            contextManager.step_to(before)
        if contextManager.exists(model):
            contextManager.remove_context(model)
    return npz, str(err.value)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize("damage", [os.remove, _truncate], ids=["missing", "truncated"])
def test_load_with_damaged_npz_names_the_file(saved, tmp_path, damage):
    npz, message = _load_broken_copy(saved, tmp_path, damage)
    assert str(npz) in message, message
