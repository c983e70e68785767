"""The drop-in contract: every program that runs with ngc-learn's own ``AdExCell`` runs unchanged with
ours, with the same Euler results.

Independent expectations: ngc-learn's own spiking test suite (run verbatim with only the AdEx import
swapped), ngc-learn's cell run side by side in the same process, its checkpoints, and the scipy
reference solver for spike detection below the exponential's threshold.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import jax.numpy as jnp
import ngclearn
from ngclearn import Context, MethodProcess
from ngclearn.components.neurons.spiking.adExCell import AdExCell as NgcAdExCell
from ngcsimlib.context import contextManager

from conftest import make_cell, run_side_by_side, unique_name
from ngc_adex import AdExCell, preset, preset_kwargs
from ngc_adex.reference import spike_times
from ngc_adex.simulate import simulate

SPIKING_TESTS = os.path.join(os.path.dirname(os.path.dirname(ngclearn.__file__)),
                             "tests", "components", "neurons", "spiking")
BUILTIN_IMPORT = "from ngclearn.components.neurons.spiking.adExCell import AdExCell"


# ----------------------------------------------------------------------------
# 1. ngc-learn's own spiking tests, verbatim but for the import
# ----------------------------------------------------------------------------
@pytest.mark.subprocess
def test_ngclearn_spiking_suite_passes_with_our_cell(tmp_path):
    """Every spiking-cell test file that the ngclearn wheel installs, run in one pytest process;
    test_adExCell.py imports ngc_adex's AdExCell instead of ngc-learn's (nothing else changes)."""
    files = sorted(f for f in os.listdir(SPIKING_TESTS) if f.startswith("test_") and f.endswith(".py"))
    assert "test_adExCell.py" in files and len(files) >= 5, files
    n_tests = 0
    for name in files:
        source = open(os.path.join(SPIKING_TESTS, name)).read()
        if name == "test_adExCell.py":
            assert source.count(BUILTIN_IMPORT) == 1
            source = source.replace(BUILTIN_IMPORT, "from ngc_adex import AdExCell")
        n_tests += len(re.findall(r"^def test_", source, flags=re.M))
        (tmp_path / name).write_text(source)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert re.search(rf"\b{n_tests} passed\b", res.stdout), res.stdout[-2000:]


# ----------------------------------------------------------------------------
# 2. what the built-in simulates: accepted, and the same Euler results
# ----------------------------------------------------------------------------
DEGENERATE = {  # what ngc-learn's cell simulates without trouble, and the currents it gets
    "thr below V_T (ngc-learn's own test)": (dict(tau_m=50., resist_m=30., thr=-66.), [[0.2, 0.5, 1., 3.]]),
    "thr at V_T": (dict(thr=-55.), [[10., 20., 40., -5.]]),
    "v_reset above thr": (dict(thr=-60., v_reset=-58.), [[0., 5., 20., -20.]]),
    "v_reset at thr": (dict(thr=-60., v_reset=-60.), [[0., 5., 20., -20.]]),
    "v0 above thr": (dict(v0=10.), [[0., 10., 30., -50.]]),
    "tau_w = 1e10 (adaptation off)": (dict(tau_w=1e10, b=5.), [[10., 20., 40., -5.]]),
    "tau_m = 2e9": (dict(tau_m=2e9, v0=-56.), [[10., 20., 40., -5.]]),
    "resist_m = 0 (input disconnected)": (dict(resist_m=0., v0=-54.), [[10., 20., 40., -5.]]),
    "negative a and b": (dict(a=-0.05, b=-0.5), [[15., 20., 40., 100.]]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(DEGENERATE))
def test_euler_matches_builtin_in_degenerate_regimes(case):
    kwargs, current = DEGENERATE[case]
    theirs, mine = run_side_by_side(kwargs, current)
    assert all(np.isfinite(x).all() for x in theirs), "the built-in must stay finite for the comparison"
    np.testing.assert_array_equal(theirs[2], mine[2])  # spikes
    np.testing.assert_array_equal(theirs[3], mine[3])  # tols
    np.testing.assert_allclose(theirs[0], mine[0], rtol=1e-6, atol=5e-2)
    np.testing.assert_allclose(theirs[1], mine[1], rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_degenerate_regimes_spike_as_documented():
    """v_reset above thr: a spike in every step once free (the built-in: wherever its Euler step ends
    above thr, here every step); v0 above thr: a spike in the first step."""
    theirs, _ = run_side_by_side(*DEGENERATE["v_reset above thr"], steps=500)
    s = theirs[2][:, 0, 2]  # the built-in, for a current that drives v above v_reset
    first = np.flatnonzero(s)[0]
    assert np.all(s[first:] == 1.)
    for method in ("midpoint", "rk4", "precise"):
        cell = make_cell(2, integration_type=method, thr=-60., v_reset=-58., v0=-58., refract_time=[0., 1.])
        res = simulate(cell, 5., 0.1, 20., record=("s", "v"))
        s = res.traces["s"]
        assert np.all(s[:, 0] == 1.), method  # free at once: a spike at the start of every step
        # refractory: a spike at the end of every refractory period (t = 0, 1, 2, ... ms)
        np.testing.assert_allclose(res.trains()[1], np.arange(6.), atol=1e-5)
        assert res.traces["v"].max() <= -58. + 1e-4
        first = simulate(make_cell(1, integration_type=method, v0=10.), 0.3, 0.1, 0., record=("s",))
        np.testing.assert_array_equal(first.traces["s"][:, 0], [1., 0., 0.])
        assert first.spike_times[0] == pytest.approx(0., abs=1e-6)  # at the start of the first step


@pytest.mark.slow
@pytest.mark.parametrize("name,v_peak", [("tonic", -52.), ("tonic", -50.), ("adapting", -51.),
                                         ("brette_gerstner_2005", -55.)])
def test_spike_detection_below_the_exponential_threshold_is_accurate(name, v_peak):
    """thr <= V_T: the crossing lies below the upswing, where v is smooth (scipy reference: exact spike times)."""
    p = dict(preset(name), V_peak=v_peak)
    ref = spike_times(p, 500.)
    assert len(ref) >= 10
    bounds = {"precise": 1e-3, "rk4": 1e-3, "midpoint": 1e-2, "heun": 1e-2}  # max |error| (ms), dt = 0.1
    kw = dict(preset_kwargs(name), thr=v_peak)
    for method, bound in bounds.items():
        cell = make_cell(1, integration_type=method, **kw)
        times = simulate(cell, 500., 0.1, p["I"]).trains()[0]
        assert len(times) == len(ref), method
        assert np.max(np.abs(times - ref)) < bound, (method, np.max(np.abs(times - ref)))


@pytest.mark.parametrize("name,method", [("heun", "heun"), ("rk2_heun", "heun"), ("Ralston", "ralston"),
                                         ("rk2_ralston", "ralston"), ("RK2", "midpoint"), ("rk4", "rk4"),
                                         ("EULER", "euler"), ("rk1", "euler")])
def test_ngclearn_integrator_names_map_to_an_integrator_of_that_order(name, method):
    cell = make_cell(1, integration_type=name)
    assert cell.integration_type == method and cell.integrationType == name
    with pytest.raises(ValueError, match=r"integration_type must be one of \[.*'heun'.*'rk2_ralston'"):
        make_cell(1, integration_type="rk45")


# ----------------------------------------------------------------------------
# 3. the built-in's attributes, and writes to them
# ----------------------------------------------------------------------------
BUILTIN_ATTRIBUTES = ("tau_m", "R_m", "tau_w", "sharpV", "vT", "thr", "v_rest", "v_reset", "a", "b", "v0", "w0",
                      "integrationType", "intgFlag", "n_units", "batch_size")


@pytest.mark.parametrize("kwargs", [dict(), dict(tau_m=20., resist_m=2., v_sharpness=1., intrinsic_mem_thr=-50.,
                                                 thr=0., v_rest=-65., v_reset=-70., a=0.3, b=2., v0=-66., w0=1.,
                                                 integration_type="midpoint", batch_size=2),
                                    dict(integration_type="rk4"), dict(integration_type="heun"),
                                    dict(v_thr=-10.)])
def test_builtin_attributes_have_the_builtins_values(kwargs):
    with Context(unique_name("attrs")):
        theirs = NgcAdExCell("theirs", 3, **kwargs)
        ours = AdExCell("ours", 3, **kwargs)
    for name in BUILTIN_ATTRIBUTES:
        assert getattr(ours, name) == getattr(theirs, name), name


def _w_after_write(cls, **writes):
    with Context(unique_name("write")):
        z = cls("z", 1)
        for name, value in writes.items():
            setattr(z, name, value)
        advance = MethodProcess("advance") >> z.advance_state
        reset = MethodProcess("reset") >> z.reset
        advance.watch(z.w, z.s)
    reset.run()
    z.j.set(jnp.full((1, 1), 30.))
    _, (w, s) = advance.scan(jnp.array(advance.pack_rows(300, t=lambda i: (i + 1) * 0.1, dt=0.1)))
    return np.asarray(w)[:, 0, 0], np.asarray(s)[:, 0, 0]


@pytest.mark.slow
@pytest.mark.parametrize("writes", [dict(b=100.), dict(tau_w=50., a=2.), dict(thr=-40., v_reset=-60.),
                                    dict(R_m=2., sharpV=1., vT=-57.), dict(v0=-60., w0=5.)])
def test_attribute_writes_before_compiling_take_effect_as_in_the_builtin(writes):
    (w_theirs, s_theirs), (w_ours, s_ours) = _w_after_write(NgcAdExCell, **writes), _w_after_write(AdExCell, **writes)
    np.testing.assert_array_equal(s_theirs, s_ours)
    np.testing.assert_allclose(w_theirs, w_ours, rtol=1e-5, atol=1e-4)
    w_default, _ = _w_after_write(AdExCell)
    assert not np.allclose(w_default, w_ours)  # the write changed the run


def test_attribute_write_is_validated_and_saved(tmp_path):
    cell = make_cell(2)
    with pytest.raises(ValueError, match="tau_m must be > 0 ms"):
        cell.tau_m = -1.
    assert cell.tau_m == 15.  # a rejected write changes nothing
    cell.b = [1., 2.]
    cell.integrationType = "rk4"
    assert cell.intgFlag == 4 and cell.precise_times  # precise times follow the integrator's default
    cell.intgFlag = 2
    assert cell.integration_type == "heun"
    saved = cell.to_json()
    assert saved["kwargs"]["b"] == [1., 2.] and saved["kwargs"]["integration_type"] == "heun"


# ----------------------------------------------------------------------------
# 4. checkpoints of the built-in load
# ----------------------------------------------------------------------------
def _builtin_checkpoint(directory, model, steps=150):
    """A run of ngc-learn's cell saved with Context.save_to_json, and its continuation (spikes, v, w)."""
    with Context(model) as ctx:
        z = NgcAdExCell("z", 3, tau_m=12., b=2.)
        advance = MethodProcess("advance") >> z.advance_state
        reset = MethodProcess("reset") >> z.reset
        advance.watch(z.s, z.v, z.w)
    reset.run()
    z.j.set(jnp.asarray([[20., 30., 45.]]))
    final, _ = advance.scan(jnp.array(advance.pack_rows(steps, t=lambda i: (i + 1) * 0.1, dt=0.1)))
    from ngcsimlib.global_state import stateManager
    stateManager.set_state(final)
    ctx.save_to_json(str(directory), model, overwrite=True)
    _, cont = advance.scan(jnp.array(advance.pack_rows(steps, t=lambda i: (steps + i + 1) * 0.1, dt=0.1)))
    contextManager.remove_context(model)
    return [np.asarray(c) for c in cont]


def _continue(advance, cell, steps=150):
    """(s, v, w) of ``steps`` more steps of a loaded model, stepped with its own advance process."""
    out = []
    for i in range(steps):
        advance.run(t=(steps + i + 1) * 0.1, dt=0.1)
        out.append([np.asarray(c.get()) for c in (cell.s, cell.v, cell.w)])
    return [np.stack(x) for x in zip(*out)]


@pytest.mark.slow
def test_builtin_checkpoint_loads_into_our_cell(tmp_path):
    model = unique_name("builtin_ckpt")
    expected = _builtin_checkpoint(tmp_path, model)
    # swap the class in the saved model, as a user porting a trained model does
    roots = tmp_path / model / "component" / "roots.json"
    data = json.loads(roots.read_text())
    assert data["z"]["modulePath"].startswith("ngclearn.")
    data["z"]["modulePath"] = "ngc_adex.AdExCell"
    roots.write_text(json.dumps(data))
    ctx = Context.load(str(tmp_path), model)
    cell = ctx.get_components("z")
    assert isinstance(cell, AdExCell)
    np.testing.assert_array_equal(np.asarray(cell.t_spike.get()), 0.)
    np.testing.assert_array_equal(np.asarray(cell.ref_left.get()), 0.)
    cell.j.set(jnp.asarray([[20., 30., 45.]]))
    got = _continue(ctx.get_objects_by_type("process")["advance"], cell)
    assert expected[0].sum() > 0
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], atol=5e-2)
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-5, atol=1e-4)
    contextManager.remove_context(model)


@pytest.mark.slow
def test_builtin_npz_loads_with_cell_load_and_damage_still_raises(tmp_path):
    model = unique_name("builtin_npz")
    _builtin_checkpoint(tmp_path, model)
    custom = tmp_path / model / "component" / "custom"
    with Context(unique_name("npz")):
        cell = AdExCell("z", 3, tau_m=12., b=2.)
    cell.load(str(custom))
    saved = np.load(custom / "z.npz")
    np.testing.assert_array_equal(np.asarray(cell.v.get()), saved["v"])
    np.testing.assert_array_equal(np.asarray(cell.tols.get()), saved["tols"])
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(custom / "z.npz", broken / "z.npz")
    with open(broken / "z.npz", "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(ValueError, match="corrupted"):
        cell.load(str(broken))
    np.savez(broken / "z.npz", **{k: saved[k] for k in saved.files if k != "w"})
    with pytest.raises(ValueError, match="lacks compartment 'w'"):
        cell.load(str(broken))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4", "precise"])
def test_nan_input_makes_a_neuron_above_threshold_nan_not_spike(method):
    """A neuron that starts its steps above the spike potential (v_reset > thr) spikes without looking at
    its input; a NaN input still makes it NaN (and silent), and leaves its neighbour untouched."""
    cell = make_cell(2, integration_type=method, thr=-60., v_reset=-58., v0=-58.)
    res = simulate(cell, 1., 0.1, jnp.asarray([[20., np.nan]]), record=("s", "v"))
    assert np.all(res.traces["s"][:, 0] == 1.) and np.all(np.isfinite(res.traces["v"][:, 0]))
    assert np.all(res.traces["s"][:, 1] == 0.) and np.all(np.isnan(res.traces["v"][:, 1]))
