"""Numerical properties of the integrators: convergence order, integrate-and-fire limit, refractoriness,
overflow safety, float64, differentiability."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from conftest import make_cell, spike_errors
from ngc_adex import numerics, preset, preset_kwargs
from ngc_adex.reference import spike_times
from ngc_adex.simulate import simulate

HERE = os.path.dirname(__file__)

# Measured in float64 in a subprocess (x64 must be set before JAX starts): the error of v and w at
# T = 40 ms on a subthreshold trajectory that passes close to V_T (the exponential term matters).
_ORDER_SCRIPT = r"""
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np, jax.numpy as jnp
from ngc_adex.reference import simulate_reference
from ngc_adex import numerics, preset, preset_kwargs
p = dict(preset("adapting"), I=200.)
kw = preset_kwargs("adapting")
params = numerics.AdExParams(**{k: kw[k] for k in numerics.AdExParams._fields})
c = numerics.coefficients(params, jnp.float64)
T, v0, w0 = 40., -52., 10.
ref = simulate_reference(p, T, v0=v0, w0=w0, t_eval=np.array([T]), rtol=1e-13)
assert len(ref["spikes"]) == 0
out = {}
# precise (order 6 in float64) reaches the reference's floor (~1e-12) at dt = 0.5: coarser steps
DTS = {"precise": (2.0, 1.6, 1.25)}
for method in numerics.METHODS:
    @jax.jit
    def final_state(dt, n):
        z = jnp.zeros((1, 1))
        st = numerics.AdExState(z + v0, z + w0, z, z, z, z)
        return jax.lax.fori_loop(0, n, lambda i, s: numerics.advance(s, p["I"], (i + 1) * dt, dt, c, method, False), st)
    errs, dts = [], DTS.get(method, (1.6, 0.8, 0.4, 0.2))
    for dt in dts:
        st = final_state(dt, int(round(T / dt)))
        errs.append(abs(float(st.v[0, 0]) - ref["v"][0]) + abs(float(st.w[0, 0]) - ref["w"][0]))
    out[method] = (dts, errs)
print(json.dumps(out))
"""


@pytest.mark.subprocess
def test_convergence_order_below_threshold():
    res = subprocess.run([sys.executable, "-c", _ORDER_SCRIPT], capture_output=True, text=True, check=True,
                         timeout=300)
    errors = json.loads(res.stdout.strip().splitlines()[-1])
    # the orders each integrator's module declares (precise: its series' order in float64)
    expected = {"euler": numerics.euler.ORDER, **numerics.runge_kutta.ORDER,
                "precise": numerics.series.SERIES_ORDER["float64"]}
    assert sorted(expected) == sorted(numerics.METHODS)
    for method, order in expected.items():
        dts, errs = (np.array(x) for x in errors[method])
        slopes = np.log(errs[:-1] / errs[1:]) / np.log(dts[:-1] / dts[1:])
        assert np.all(np.abs(slopes - order) < 0.35), (method, slopes)


def lif_period(kw, current):
    """Closed-form interspike interval of the integrate-and-fire limit (a = b = 0)."""
    drive = kw["resist_m"] * current
    return kw["tau_m"] * np.log((drive - (kw["v_reset"] - kw["v_rest"])) /
                                (drive - (kw["intrinsic_mem_thr"] - kw["v_rest"])))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rk4", "precise"])
def test_integrate_and_fire_limit(method):
    """v_sharpness = 0, a = b = 0 is a plain LIF with threshold intrinsic_mem_thr (thr plays no role)."""
    kw = dict(preset_kwargs("tonic"), v_sharpness=0., a=0., b=0., thr=30., v0=-58.)  # v0 = v_reset
    currents = np.array([250., 500., 1500.])
    cell = make_cell(3, integration_type=method, **kw)
    trains = simulate(cell, 300., 0.1, jnp.asarray(currents[None], dtype=jnp.float32)).trains()
    for current, times in zip(currents, trains):
        period = lif_period(kw, current)
        expected = period * np.arange(1, int(300. / period) + 1)
        dn, err = spike_errors(times, expected)
        assert dn == 0 and err.max() <= 2e-3, (current, dn, err.max())


@pytest.mark.slow
def test_integrate_and_fire_limit_with_adaptation():
    """v_sharpness = 0 with adaptation against the reference (linear dynamics between spikes)."""
    p = dict(preset("adapting"), DT=0.)
    kw = dict(preset_kwargs("adapting"), v_sharpness=0.)
    cell = make_cell(1, integration_type="precise", **kw)
    times = simulate(cell, 500., 0.1, 500.).trains()[0]
    dn, err = spike_errors(times, spike_times(p, 500., I=500.))
    # the late, slow approaches to threshold amplify float32 rounding of v (float64: 2e-5 ms)
    assert dn == 0 and err.mean() <= 1e-3 and err.max() <= 5e-3


@pytest.mark.slow
@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4", "precise"])
def test_refractory_clamp_and_adaptation(method):
    t_ref, dt = 2.34, 0.1  # not a multiple of dt
    kw = preset_kwargs("adapting", t_ref=t_ref)
    cell = make_cell(1, integration_type=method, **kw)
    res = simulate(cell, 300., dt, preset("adapting")["I"], record=("v", "w", "ref_left", "s"))
    v, w, left = res.traces["v"][:, 0], res.traces["w"][:, 0], res.traces["ref_left"][:, 0]
    times = res.trains()[0]
    assert len(times) >= 5
    # euler keeps ngc-learn's semantics: the reset (and the clamp) starts at the end of the step
    starts = res.t[res.traces["s"][:, 0] > 0] if method == "euler" else times
    w_inf, tau_w = kw["a"] * (kw["v_reset"] - kw["v_rest"]), kw["tau_w"]
    for start in starts:
        clamped = (res.t > start + 1e-4) & (res.t <= start + t_ref - 1e-4)
        assert clamped.sum() >= 22
        assert np.all(v[clamped] == np.float32(kw["v_reset"]))
        np.testing.assert_allclose(left[clamped], start + t_ref - res.t[clamped], atol=1e-4)
        # w relaxes in closed form towards a (v_reset - v_rest) while v is held
        t_c, w_c = res.t[clamped], w[clamped]
        expected = w_inf + (w_c[0] - w_inf) * np.exp(-(t_c - t_c[0]) / tau_w)
        np.testing.assert_allclose(w_c, expected, rtol=1e-5, atol=1e-4)
        # the clamp lasts exactly t_ref: the first grid point after it is free
        after = np.argmax(res.t > start + t_ref + 1e-4)
        assert v[after] > kw["v_reset"] and left[after] == 0.
    if method == "precise":
        ref = spike_times(preset("adapting"), 300., t_ref=t_ref)
        dn, err = spike_errors(times, ref)
        assert dn == 0 and err.max() <= 2e-3


@pytest.mark.parametrize("method", numerics.METHODS)
def test_no_overflow_where_ngclearn_goes_nan(method):
    """Default parameters, j = 30, dt = 0.1: ngc-learn's rk2 goes NaN within a few hundred steps."""
    cell = make_cell(4, integration_type=method)
    res = simulate(cell, 200., 0.1, jnp.asarray([[30., 300., 3e4, -3e4]]), record=("v", "w"))
    v, w = res.traces["v"], res.traces["w"]
    assert np.isfinite(v).all() and np.isfinite(w).all()
    assert (v <= 5.).all()
    assert res.counts()[1] > 0 and res.counts()[3] == 0


@pytest.mark.slow
def test_extreme_step_and_currents_stay_finite():
    for method in numerics.METHODS:
        cell = make_cell(3, integration_type=method, tau_m=0.1, tau_w=0.1, v_sharpness=[0., 1e-3, 10.], a=50.)
        res = simulate(cell, 50., 1.0, jnp.asarray([[1e9, -1e9, jnp.inf]]), record=("v", "w"))
        assert np.isfinite(res.traces["v"]).all() and np.isfinite(res.traces["w"]).all(), method
        assert (res.traces["v"] <= 5.).all()


_X64_SCRIPT = r"""
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np, jax.numpy as jnp
sys.path.insert(0, sys.argv[1])
from conftest import NAUD, run_presets, spike_errors
from ngc_adex.reference import spike_times
from ngc_adex import preset
trains = run_presets(NAUD[:7], "precise", 0.1)
means = [spike_errors(t, spike_times(preset(n), 500.))[1].mean() for n, t in zip(NAUD, trains)]
counts = [spike_errors(t, spike_times(preset(n), 500.))[0] for n, t in zip(NAUD, trains)]
from conftest import make_cell
print(json.dumps({"median": float(np.median(means)), "counts": counts,
                  "dtype": str(make_cell(1).v.get().dtype)}))
"""


@pytest.mark.subprocess
def test_float64_is_more_accurate():
    res = subprocess.run([sys.executable, "-c", _X64_SCRIPT, HERE], capture_output=True, text=True, check=True,
                         timeout=300)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["dtype"] == "float64"
    assert all(c == 0 for c in out["counts"])
    assert out["median"] <= 1e-4  # float32 gives 1.4e-4, float64 6e-5: the remaining error is truncation


@pytest.mark.slow
def test_precise_step_is_reverse_differentiable():
    """Gradients flow through the precise stepper (no data-dependent while loop) and match finite differences."""
    kw = preset_kwargs("tonic")
    c = numerics.coefficients(numerics.AdExParams(**{k: kw[k] for k in numerics.AdExParams._fields}))

    def final_w(current):
        z = jnp.zeros((1, 1))
        st = numerics.AdExState(z - 70., z, z, z, z, z)
        step = lambda s, i: (numerics.advance(s, current, (i + 1) * 0.1, 0.1, c, "precise", False), None)
        return jax.lax.scan(step, st, jnp.arange(100))[0].w.sum()

    final_w = jax.jit(final_w)
    grad = jax.jit(jax.grad(final_w))(300.)  # subthreshold: w grows with the current
    fd = (final_w(301.) - final_w(299.)) / 2.
    assert np.isfinite(grad) and grad > 0
    np.testing.assert_allclose(grad, fd, rtol=2e-2)


@pytest.mark.slow
def test_vmap_over_currents_matches_population():
    kw = preset_kwargs("tonic")
    c = numerics.coefficients(numerics.AdExParams(**{k: kw[k] for k in numerics.AdExParams._fields}))
    currents = jnp.array([400., 500., 600.])

    def run(current):
        z = jnp.zeros((1, 1)) + jnp.zeros_like(current)
        st = numerics.AdExState(z - 70., z, z, z, z, z)
        step = lambda s, i: (numerics.advance(s, current, (i + 1) * 0.1, 0.1, c, "precise", False), s.s)
        return jax.lax.scan(step, st, jnp.arange(500))[1].sum()

    vmapped = jax.jit(jax.vmap(run))(currents)
    cell = make_cell(3, integration_type="precise", **kw)
    pop = simulate(cell, 50., 0.1, currents[None]).counts()
    np.testing.assert_array_equal(np.asarray(vmapped), pop)


def _hlo_counts(fn, *args):
    """Instructions, fusions, conditionals and loops of the optimized (compiled) HLO of ``jax.jit(fn)``."""
    import re
    text = jax.jit(fn).lower(*args).compile().as_text()
    return {"instructions": len(re.findall(r"^\s*(?:ROOT )?%?[\w.-]+ = ", text, re.M)),
            "fusions": len(re.findall(r"^\s*(?:ROOT )?%?[\w.-]+ = .*? fusion\(", text, re.M)),
            "conditionals": len(re.findall(r" conditional\(", text)), "loops": len(re.findall(r" while\(", text))}


@pytest.mark.slow
@pytest.mark.parametrize("refractory", [False, True])
@pytest.mark.parametrize("method", numerics.METHODS)
def test_constant_dt_compiles_like_traced_dt(method, refractory):
    """A Python-float dt closed over in a user's jit is a compile-time constant, which XLA could fold,
    and with it the conditional that keeps the flight materialized once (numerics.devices): the step
    compiles to the same program whatever the kind of dt, and gives the same bits."""
    kw = preset_kwargs("brette_gerstner_2005", **({"t_ref": 2.} if refractory else {}))
    cell = make_cell(64, integration_type=method, **kw)
    state = tuple(c.get() for c in (cell.v, cell.w, cell.ref_left, cell.s, cell.tols, cell.t_spike))
    j = jnp.linspace(400., 1600., 64, dtype=jnp.float32)[None, :]
    t, dt = jnp.float32(1.), 0.1
    traced = _hlo_counts(lambda s, j, t, dt: cell.step_fn(*s, j, t, dt), state, j, t, jnp.float32(dt))
    constant = _hlo_counts(lambda s, j, t: cell.step_fn(*s, j, t, dt), state, j, t)
    assert constant == traced
    if numerics.devices.tuned():
        # the flight's twin-branch conditional survives ("precise": beside those of its sub-flights:
        # whether any lane landed short, each round of the compact buffer, its landing's twin
        # branches, each sub-flight, whether rk4 flights finish the step; and XLA's own)
        assert traced["conditionals"] == (8 if method == "precise" else 1)

    def run(dt_of_step):
        body = lambda s, t: (numerics.AdExState(*cell.step_fn(*s, j, t, dt_of_step(t))), None)
        return jax.lax.scan(body, numerics.AdExState(*state), (jnp.arange(300, dtype=jnp.float32) + 1.) * dt)[0]

    ref = jax.jit(lambda d: run(lambda t: d))(jnp.float32(dt))
    got = jax.jit(lambda: run(lambda t: dt))()
    assert float(ref.tols.max()) > 0.  # some neurons spiked
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sub_flights_leave_other_lanes_bitwise():
    """"precise": lanes whose flight covers the step give bitwise the same results whether or not
    other lanes of the population need sub-flights (a sharp exponential under strong drive)."""
    kw = preset_kwargs("tonic")
    p = {k: np.full((1, 3), kw[k], np.float64) for k in numerics.AdExParams._fields}
    p["v_sharpness"] = np.asarray([[2., 0.5, 2.]])
    c = numerics.coefficients(numerics.AdExParams(**p))

    def run(j):
        z = jnp.zeros((1, 3), jnp.float32)

        def body(s, t):
            s = numerics.advance(s, j, t, 0.1, c, "precise", False)
            return s, (s.v, s.w, s.s, s.t_spike)
        s0 = numerics.AdExState(jnp.full((1, 3), -70., jnp.float32), z, z, z, z, z)
        return jax.jit(lambda: jax.lax.scan(body, s0, (jnp.arange(400, dtype=jnp.float32) + 1.) * 0.1)[1])()

    strong = run(jnp.asarray([[500., 6000., 800.]], jnp.float32))
    quiet = run(jnp.asarray([[500., 0., 800.]], jnp.float32))
    assert float(strong[2][:, 0, 1].sum()) > 50
    for a, b in zip(strong, quiet):
        np.testing.assert_array_equal(np.asarray(a)[:, :, [0, 2]], np.asarray(b)[:, :, [0, 2]])
