"""Checks of the public reference AdEx solver (ngc_adex.reference) against
facts that do not depend on it: NEST's converged spike times, closed-form LIF
firing times, the matrix-exponential solution of the linear subthreshold
system, the exact refractory clamp, and its own convergence."""

import math
import sys

import numpy as np
import pytest
from scipy.linalg import expm

from ngc_adex import preset  # (Naud et al. 2008 presets, ngc_adex/data/presets.json)
from ngc_adex import reference
from ngc_adex.reference import NEST_PARAMS as NEST_P  # NEST's aeif test problem
from ngc_adex.reference import NEST_SPIKES, NEST_T, NEST_V0, NEST_W0, simulate_reference, spike_times

LIF_P = dict(C=200.0, gL=10.0, EL=-70.0, VT=-50.0, DT=0.0, a=0.0, b=0.0,
             tau_w=100.0, Vr=-58.0, V_peak=0.0)


def _lif_times(p, I, T, t_ref=0.0):
    tau_m = p["C"] / p["gL"]
    RI = I / p["gL"]
    t1 = tau_m * math.log(RI / (RI - (p["VT"] - p["EL"])))
    period = tau_m * math.log((RI - (p["Vr"] - p["EL"])) / (RI - (p["VT"] - p["EL"])))
    out = []
    t = t1
    while t <= T:
        out.append(t)
        t += period + t_ref
    return np.array(out)


# 1 ------------------------------------------------------------------------
def test_nest_aeif_spike_times():
    s = spike_times(NEST_P, NEST_T, v0=NEST_V0, w0=NEST_W0)
    assert len(s) == len(NEST_SPIKES)
    np.testing.assert_allclose(s, NEST_SPIKES, rtol=0, atol=1e-5)


# 2 ------------------------------------------------------------------------
@pytest.mark.parametrize("I", [250.0, 500.0, 1500.0])
def test_dt0_matches_closed_form_lif(I):
    T = 300.0
    s = spike_times(LIF_P, T, I=I)
    expected = _lif_times(LIF_P, I, T)
    assert len(s) == len(expected)
    np.testing.assert_allclose(s, expected, rtol=0, atol=1e-8)


def test_dt0_lif_with_refractory_period():
    I, T, t_ref = 500.0, 300.0, 2.5
    s = spike_times(LIF_P, T, I=I, t_ref=t_ref)
    expected = _lif_times(LIF_P, I, T, t_ref=t_ref)
    assert len(s) == len(expected)
    np.testing.assert_allclose(s, expected, rtol=0, atol=1e-8)


def test_small_dt_approaches_lif():
    """DT -> 0 limit: the exponential model tends to the DT == 0 model
    (first-order in DT); also exercises an underflowing u_peak."""
    I, T = 500.0, 30.0
    lif = _lif_times(LIF_P, I, T)[0]
    errs = []
    for DT in (0.1, 0.01, 0.001):
        s = spike_times(dict(LIF_P, DT=DT), T, I=I)
        errs.append(s[0] - lif)
    assert all(e > 0 for e in errs)  # the upswing takes extra time
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.02


# 3 ------------------------------------------------------------------------
def test_subthreshold_linear_matches_expm():
    p = dict(LIF_P, a=2.0, b=0.0, tau_w=80.0)
    I = 100.0  # steady state EL + I/(gL + a) = -61.7 mV < VT
    v0, w0 = -64.0, 30.0
    T = 400.0
    t = np.linspace(0.0, T, 401)
    r = simulate_reference(p, T, I=I, v0=v0, w0=w0, t_eval=t)
    assert len(r["spikes"]) == 0
    C, gL, EL, a, tw = p["C"], p["gL"], p["EL"], p["a"], p["tau_w"]
    A = np.array([[-gL / C, -1.0 / C], [a / tw, -1.0 / tw]])
    c = np.array([(gL * EL + I) / C, -a * EL / tw])
    xs = -np.linalg.solve(A, c)
    x0 = np.array([v0, w0])
    exact = np.array([xs + expm(A * tk) @ (x0 - xs) for tk in t])
    np.testing.assert_allclose(r["v"], exact[:, 0], rtol=0, atol=1e-8)
    np.testing.assert_allclose(r["w"], exact[:, 1], rtol=0, atol=1e-8)
    assert np.max(r["v"]) < p["VT"]


# 4 ------------------------------------------------------------------------
@pytest.mark.parametrize("t_ref", [2.0, 5.0])
def test_refractory_clamp_exact(t_ref):
    p = preset("adapting")
    T = 250.0
    r0 = simulate_reference(p, T)
    r = simulate_reference(p, T, t_ref=t_ref)
    s = r["spikes"]
    state = r["state"]
    assert len(s) >= 4
    # nothing changes before the first spike
    assert abs(s[0] - r0["spikes"][0]) < 1e-9
    # the clamp delays the later spikes and spacing is at least t_ref
    assert np.all(np.diff(s) > t_ref)
    assert s[1] > r0["spikes"][1]
    w_inf = p["a"] * (p["Vr"] - p["EL"])
    for ts in s:
        if ts + t_ref > T:
            continue
        tq = ts + np.linspace(0.0, t_ref, 51)
        tq[-1] = ts + t_ref
        v, w = state(tq)
        assert np.all(v == p["Vr"])  # exactly Vr on [ts, ts + t_ref]
        # post-reset w: the pre-spike limit plus b
        _, w_pre = state(np.array([ts - 1e-10]))
        assert abs(w[0] - (w_pre[0] + p["b"])) < 1e-6
        closed = w_inf + (w[0] - w_inf) * np.exp(-(tq - ts) / p["tau_w"])
        np.testing.assert_allclose(w, closed, rtol=1e-13, atol=1e-11)
        # right after the clamp V is free again and starts rising
        v_after, _ = state(np.array([ts + t_ref + 0.5]))
        assert v_after[0] > p["Vr"]


# 5 ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["tonic", "adapting"])
def test_converged_under_tolerance_halving(name):
    p = preset(name)
    s1 = spike_times(p, 500.0)
    s2 = spike_times(p, 500.0, rtol=0.5e-11, atol_scale=0.5)
    assert len(s1) == len(s2) > 5
    assert np.max(np.abs(s1 - s2)) < 1e-7


# extra consistency -----------------------------------------------------
def test_t_eval_right_continuous_and_below_peak():
    p = preset("tonic")
    T = 100.0
    t = np.linspace(0.0, T, 2001)
    r = simulate_reference(p, T, t_eval=t)
    s = r["spikes"]
    assert np.all(r["v"] < p["V_peak"])
    assert np.all(np.isfinite(r["w"]))
    v_at, _ = r["state"](s)
    assert np.all(v_at == p["Vr"])  # post-reset value at the spike time
    v_pre, _ = r["state"](s - 1e-11)
    assert np.all(v_pre > p["V_peak"] - 0.2)  # just before: at the peak


def test_step_current_restart_consistency():
    p = preset("adapting")
    t_on, T = 40.0, 200.0
    full = simulate_reference(
        p, T, I=lambda t: 0.0 if t < t_on else 500.0, I_breaks=[t_on])
    a = simulate_reference(p, t_on, I=0.0, t_eval=[t_on])
    b = simulate_reference(p, T - t_on, I=500.0, v0=a["v"][0], w0=a["w"][0])
    assert len(full["spikes"]) == len(b["spikes"]) > 3
    np.testing.assert_allclose(full["spikes"], b["spikes"] + t_on,
                               rtol=0, atol=1e-8)


def test_invalid_parameters_rejected():
    with pytest.raises(ValueError):
        simulate_reference(dict(NEST_P, C=0.0), 10.0)
    with pytest.raises(ValueError):
        simulate_reference(dict(NEST_P, DT=-1.0), 10.0)
    with pytest.raises(ValueError):
        simulate_reference(dict(NEST_P, V_peak=-60.0), 10.0)
    with pytest.raises(ValueError):
        simulate_reference(NEST_P, 10.0, t_ref=-1.0)


def test_public_api():
    """The module's documented names; the NEST table is read-only and matches the parameters' problem."""
    assert set(reference.__all__) <= set(dir(reference))
    for name in ("simulate_reference", "spike_times", "validate_params"):
        assert callable(getattr(reference, name)) and getattr(reference, name).__doc__
    assert reference.validate_params(NEST_P) == {k: v for k, v in NEST_P.items() if k != "I"}
    with pytest.raises(ValueError):
        NEST_SPIKES[0] = 0.
    with pytest.raises(KeyError, match="missing AdEx parameters"):
        simulate_reference({"C": 200.}, 10.)


def test_missing_scipy_names_the_extra(monkeypatch):
    """Without scipy, a simulation raises an ImportError that says how to install it."""
    monkeypatch.setitem(sys.modules, "scipy.integrate", None)
    with pytest.raises(ImportError, match=r"pip install ngc-adex\[reference\]"):
        spike_times(NEST_P, 1.0)
