"""The component: drop-in compatibility with ngc-learn's AdExCell, constructor, per-neuron parameters, help."""
import inspect

import numpy as np
import pytest
import jax.numpy as jnp
from ngclearn.components.neurons.spiking.adExCell import AdExCell as NgcAdExCell

import ngc_adex
from conftest import make_cell, run_side_by_side, stacked_presets
from ngc_adex import AdExCell, preset, preset_kwargs
from ngc_adex.simulate import simulate


def test_exported_at_top_level_with_the_builtin_signature():
    assert ngc_adex.AdExCell is AdExCell and AdExCell.__module__ == "ngc_adex.cell"
    ours = inspect.signature(AdExCell.__init__._original).parameters
    theirs = inspect.signature(NgcAdExCell.__init__._original).parameters
    for name, param in theirs.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        assert name in ours, name
        assert ours[name].default == param.default, name
    assert ours["refract_time"].default == 0.


def test_same_compartments_as_builtin():
    cell = make_cell(3)
    for name in ("j", "v", "w", "s", "tols", "key"):
        assert hasattr(cell, name)
        assert cell.__dict__[name].__class__.__name__ == "Compartment"
    for name in ("j", "v", "w", "s", "tols", "t_spike", "ref_left"):
        assert cell.__dict__[name].get().shape == (1, 3)


def _without_refractoriness(kwargs):
    return {k: v for k, v in kwargs.items() if k != "refract_time"}  # ngc-learn's cell has none


COMPAT_CASES = [
    (dict(), [[10., 20., 40., -5.]]),
    (dict(tau_m=20., v_sharpness=1., a=0.5, b=2., tau_w=100.), [[15., 25., 60., 200.]]),
    (_without_refractoriness(preset_kwargs("adapting")), [[300., 500., 800., 1500.]]),
    (_without_refractoriness(preset_kwargs("regular_bursting")), [[150., 210., 260., 400.]]),
]


@pytest.mark.parametrize("kwargs,current", COMPAT_CASES)
def test_euler_equals_ngclearn_step_by_step(kwargs, current):
    """The same spikes and tols as the installed ngc-learn AdExCell wherever that one is finite, and v, w
    within float32 rounding: the expression is ngc-learn's, operation for operation, but XLA:CPU contracts
    multiply-adds differently depending on how a loop is fused (and differently in jax 0.10 and 0.12)."""
    theirs, mine = run_side_by_side(kwargs, current, steps=3000)
    finite = np.isfinite(theirs[0]).all() and np.isfinite(theirs[1]).all()
    assert finite
    assert theirs[2].sum() > 0  # the comparison covers spikes and resets
    np.testing.assert_array_equal(theirs[2], mine[2])  # spikes
    np.testing.assert_array_equal(theirs[3], mine[3])  # tols
    # rounding differences grow during the exponential upswing (up to ~0.02 mV), and vanish at each reset
    np.testing.assert_allclose(theirs[0], mine[0], rtol=0, atol=5e-2)
    np.testing.assert_allclose(theirs[1], mine[1], rtol=1e-5, atol=1e-4)


def test_v_thr_is_a_deprecated_alias_of_thr():
    cell = make_cell(1, v_thr=-10.)
    assert float(cell.params.thr) == -10.


@pytest.mark.parametrize("bad,match", [
    (dict(integration_type="rk45"), "integration_type must be one of"),
    (dict(tau_m=0.), r"tau_m must be > 0 ms"),
    (dict(tau_w=-5.), r"tau_w must be > 0 ms"),
    (dict(v_sharpness=-1.), r"v_sharpness must be 0 .* or > 0 mV"),
    (dict(resist_m=-1.), r"resist_m must be >= 0"),
    (dict(refract_time=-1.), r"refract_time must be >= 0 ms"),
    (dict(tau_w=float("nan")), "tau_w must be finite"),
    (dict(thr=float("inf")), "thr must be finite"),
    (dict(a=1e39), r"a must be finite \(\|a\| <= 3.403e\+38"),
    (dict(b=[1., 2.]), "b has shape"),
])
def test_bad_arguments_raise_at_construction(bad, match):
    with pytest.raises(ValueError, match=match):
        make_cell(3, **bad)


def test_unknown_keyword_is_rejected():
    with pytest.raises(TypeError, match="tau_mem"):
        make_cell(1, tau_mem=10.)


@pytest.mark.slow
def test_per_neuron_parameters_equal_separate_cells():
    names = ("tonic", "adapting", "initial_burst")
    currents = [preset(n)["I"] for n in names]
    pop = make_cell(3, integration_type="precise", **stacked_presets(names, refract_time=[0., 1., 2.5]))
    together = simulate(pop, 200., 0.1, jnp.asarray([currents]), record=("v", "w"))
    for k, (name, t_ref) in enumerate(zip(names, (0., 1., 2.5))):
        alone = simulate(make_cell(1, integration_type="precise", **preset_kwargs(name, t_ref=t_ref)),
                         200., 0.1, currents[k], record=("v", "w"))
        # equal up to float32 rounding (XLA fuses per-neuron and scalar constants differently, and the
        # refractory path rounds w), which the upswing above V_T amplifies: v is compared below V_T
        np.testing.assert_allclose(together.trains()[k], alone.trains()[0], rtol=0, atol=1e-4)
        v_pop, v_alone = together.traces["v"][:, k], alone.traces["v"][:, 0]
        below = (v_pop < preset(name)["VT"]) & (v_alone < preset(name)["VT"])
        assert below.mean() > 0.4
        np.testing.assert_allclose(v_pop[below], v_alone[below], rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(together.traces["w"][:, k], alone.traces["w"][:, 0], rtol=1e-5, atol=1e-3)


@pytest.mark.slow
def test_batch_dimension_broadcasts_parameters():
    cell = make_cell(2, batch_size=3, tau_m=[[10.], [20.], [30.]], integration_type="rk4")
    res = simulate(cell, 100., 0.1, 40.)
    counts = res.counts().reshape(3, 2)
    assert (counts[:, 0] == counts[:, 1]).all()  # same parameters within a batch row
    assert counts[0, 0] > counts[2, 0]  # faster membranes fire more


def test_physical_units_match_the_builtin_mapping():
    kw = ngc_adex.from_physical(C=281., g_L=30., E_L=-70.6, V_T=-50.4, Delta_T=2., V_reset=-70.6, V_peak=0.,
                                a=4., tau_w=144., b=80.5, t_ref=1.)
    assert kw["tau_m"] == pytest.approx(281. / 30.) and kw["resist_m"] == pytest.approx(1. / 30.)
    assert kw == preset_kwargs("brette_gerstner_2005", t_ref=1.)
    assert set(ngc_adex.PRESETS) >= {"tonic", "adapting", "initial_burst", "regular_bursting",
                                     "delayed_accelerating", "delayed_regular_bursting", "transient", "irregular"}
    with pytest.raises(ValueError, match="unknown preset"):
        ngc_adex.preset("bursty")


def test_help_documents_compartments_and_parameters():
    info = AdExCell.help()
    assert "AdExCell" in info
    outputs = info["compartments"]["outputs"]
    assert {"s", "tols", "t_spike"} <= set(outputs)
    assert "refract_time" in info["hyperparameters"] and "integration_type" in info["hyperparameters"]
    for word in ("t_spike", "refract_time", "precise", "Brette"):
        assert word in AdExCell.__doc__
