"""Checks of the reference solver's synaptic receptors (``simulate_reference(...,
receptors=, events=)``) against expectations that do not depend on it: closed-form
membrane responses to current events, the matrix exponential of the linear
(V, g, h) system, NEST's alpha and beta normalisations written out, a reversal
potential at the resting potential, an independent augmented-state ODE
solution, the refractory clamp, and convergence under tolerance halving."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm
from scipy.optimize import brentq

from ngc_adex import preset
from ngc_adex.reference import beta_peak_time, simulate_reference, spike_times

#: a passive membrane: no exponential term, threshold unreachable, no adaptation (tau_m = 20 ms)
PASSIVE = dict(C=200.0, gL=10.0, EL=-70.0, VT=1000.0, DT=0.0, a=0.0, b=0.0, tau_w=100.0, Vr=-80.0,
               V_peak=1000.0)
BG = preset("brette_gerstner_2005")


def _nest_beta_g0(tau_rise, tau_decay):
    """NEST's aeif_cond_beta_multisynapse normalisation, as written there (alpha: e/tau)."""
    if tau_rise == tau_decay:
        return math.e / tau_decay
    t_p = tau_decay * tau_rise * math.log(tau_decay / tau_rise) / (tau_decay - tau_rise)
    return (1.0 / tau_rise - 1.0 / tau_decay) / (math.exp(-t_p / tau_decay) - math.exp(-t_p / tau_rise))


def _poisson(rng, rate_hz, T, dt=0.1):
    """Event times on the dt grid (ms) of a Poisson train; repeated steps merged."""
    n = rng.poisson(rate_hz * T / 1000.0)
    return np.unique(np.round(rng.uniform(dt, T, n) / dt) * dt)


# 1 ------------------------------------------------------------------------
def test_passive_membrane_current_exp_closed_form():
    """Current events into a passive membrane: V is a sum of exponentials."""
    tau_s, tau_m, T = 3.0, 20.0, 100.0
    te = np.array([0.0, 5.0, 12.3, 12.3, 40.0, 99.9])
    qe = np.array([80.0, 100.0, 50.0, -30.0, 200.0, 1e3])
    t = np.linspace(0.0, T, 2001)
    r = simulate_reference(PASSIVE, T, I=0.0, t_eval=t,
                           receptors=[{"kind": "exp", "tau_decay": tau_s, "E_rev": None}], events=[(te, qe)])
    v = np.full_like(t, PASSIVE["EL"])
    i = np.zeros_like(t)
    for t0, q in zip(te, qe):
        s = t - t0
        on = s >= 0
        v[on] += q / PASSIVE["C"] * (np.exp(-s[on] / tau_s) - np.exp(-s[on] / tau_m)) / (1 / tau_m - 1 / tau_s)
        i[on] += q * np.exp(-s[on] / tau_s)
    assert len(r["spikes"]) == 0
    np.testing.assert_allclose(r["v"], v, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r["g"][0], i, rtol=1e-13, atol=1e-11)
    np.testing.assert_allclose(r["i_syn"], i, rtol=1e-13, atol=1e-11)


@pytest.mark.parametrize("kind,tau_rise,tau_decay", [("alpha", None, 2.0), ("beta", 0.5, 3.0),
                                                     ("beta", 2.0, 2.0)])
def test_passive_membrane_current_alpha_beta_matches_expm(kind, tau_rise, tau_decay):
    """The linear system (V, g, h) advanced by its matrix exponential between events."""
    T = 60.0
    te = np.array([1.0, 4.0, 4.0, 20.5, 21.0])
    qe = np.array([60.0, 30.0, 30.0, -90.0, 150.0])
    rec = {"kind": kind, "tau_decay": tau_decay, "E_rev": None}
    if tau_rise is not None:
        rec["tau_rise"] = tau_rise
    t = np.linspace(0.0, T, 301)
    r = simulate_reference(PASSIVE, T, I=0.0, t_eval=t, receptors=[rec], events=[(te, qe)])

    tr = tau_decay if tau_rise is None else tau_rise
    C, gL, EL = PASSIVE["C"], PASSIVE["gL"], PASSIVE["EL"]
    # x = (V, g, h, 1)
    A = np.array([[-gL / C, 1 / C, 0.0, gL * EL / C],
                  [0.0, -1 / tau_decay, 1.0, 0.0],
                  [0.0, 0.0, -1 / tr, 0.0],
                  [0.0, 0.0, 0.0, 0.0]])
    g0 = _nest_beta_g0(tr, tau_decay)
    x = np.array([EL, 0.0, 0.0, 1.0])
    t_prev = 0.0
    v = np.empty_like(t)
    g = np.empty_like(t)
    edges = list(np.unique(te)) + [np.inf]
    k = 0
    for j, tk in enumerate(t):
        while edges[k] <= tk:
            x = expm(A * (edges[k] - t_prev)) @ x
            x[2] += g0 * qe[te == edges[k]].sum()
            t_prev = edges[k]
            k += 1
        y = expm(A * (tk - t_prev)) @ x
        v[j], g[j] = y[0], y[1]
    np.testing.assert_allclose(r["v"], v, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r["g"][0], g, rtol=0, atol=1e-10)


# 2 ------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [0.2, 2.0, 7.5])
def test_alpha_conductance_closed_form_and_peak(tau):
    q, t0, T = 3.5, 2.0, 60.0
    t = np.linspace(0.0, T, 6001)
    r = simulate_reference(PASSIVE, T, t_eval=np.append(t, t0 + tau),
                           receptors=[{"kind": "alpha", "tau_decay": tau, "E_rev": 0.0}], events=[([t0], [q])])
    g = r["g"][0]
    s = np.maximum(t - t0, 0.0)
    closed = q * (s / tau) * np.exp(1.0 - s / tau)
    np.testing.assert_allclose(g[:-1], closed, rtol=1e-13, atol=1e-15)
    assert abs(g[-1] - q) < 1e-14 * q  # the peak: q at tau after the event
    assert np.max(g) <= q * (1 + 1e-14)


@pytest.mark.parametrize("tau_rise,tau_decay", [(0.5, 3.0), (0.2, 2.0), (2.0, 20.0), (1.0, 1.0 + 1e-9)])
def test_beta_conductance_closed_form_and_peak(tau_rise, tau_decay):
    q, t0, T = 2.0, 1.0, 80.0
    t_p = tau_decay * tau_rise * math.log(tau_decay / tau_rise) / (tau_decay - tau_rise)
    assert abs(beta_peak_time(tau_rise, tau_decay) - t_p) < 1e-6 * t_p  # cancellation in t_p's formula
    t = np.linspace(0.0, T, 8001)
    rec = {"kind": "beta", "tau_rise": tau_rise, "tau_decay": tau_decay, "E_rev": -80.0}
    r = simulate_reference(PASSIVE, T, t_eval=np.append(t, t0 + t_p), receptors=[rec], events=[([t0], [q])])
    g = r["g"][0]
    assert abs(g[-1] - q) < 1e-6 * q  # the peak is the weight
    assert np.max(g) <= q * (1 + 1e-12)
    if tau_decay - tau_rise > 1e-3:  # NEST's formulas, well-conditioned here
        s = np.maximum(t - t0, 0.0)
        closed = q * (np.exp(-s / tau_decay) - np.exp(-s / tau_rise)) / (
            math.exp(-t_p / tau_decay) - math.exp(-t_p / tau_rise))
        np.testing.assert_allclose(g[:-1], closed, rtol=1e-12, atol=1e-14)
        assert abs(g[-1] - q) < 1e-13 * q


def test_beta_equal_time_constants_is_alpha():
    te, qe = [0.5, 3.0, 3.0, 9.0], [1.0, 2.0, 0.5, 4.0]
    t = np.linspace(0.0, 30.0, 601)
    out = []
    for rec in ({"kind": "alpha", "tau_decay": 2.5, "E_rev": 0.0},
                {"kind": "beta", "tau_rise": 2.5, "tau_decay": 2.5, "E_rev": 0.0},
                {"kind": "beta", "tau_rise": 2.5 * (1 - 1e-10), "tau_decay": 2.5, "E_rev": 0.0}):
        out.append(simulate_reference(BG, 30.0, I=0.0, t_eval=t, receptors=[rec], events=[(te, qe)]))
    np.testing.assert_allclose(out[1]["g"], out[0]["g"], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(out[2]["g"], out[0]["g"], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(out[1]["v"], out[0]["v"], rtol=0, atol=1e-12)


def test_events_superpose_and_are_right_continuous():
    tau, T = 2.0, 20.0
    te, qe = np.array([3.0, 3.0, 7.0]), np.array([1.0, 2.5, 0.75])
    rec = [{"kind": "exp", "tau_decay": tau, "E_rev": 0.0}]
    r = simulate_reference(PASSIVE, T, receptors=rec, events=[(te, qe)])
    g = r["receptor_state"](np.array([3.0 - 1e-12, 3.0, 7.0, 10.0, 25.0]))[0]
    assert g[0] == 0.0
    assert abs(g[1] - 3.5) < 1e-15
    assert abs(g[2] - (3.5 * math.exp(-4.0 / tau) + 0.75)) < 1e-14
    assert abs(g[3] - (3.5 * math.exp(-7.0 / tau) + 0.75 * math.exp(-3.0 / tau))) < 1e-14
    # events after T are ignored; scalar weights broadcast
    r2 = simulate_reference(PASSIVE, T, receptors=rec, events=[(np.append(te, 30.0), 1.0)],
                            t_eval=[10.0, 20.0])
    expected = (2 * math.exp(-7.0 / tau) + math.exp(-3.0 / tau)) * np.exp(-np.array([0.0, 10.0]) / tau)
    np.testing.assert_allclose(r2["g"][0], expected, rtol=1e-14)


# 3 ------------------------------------------------------------------------
def _rest(p):
    """The stable resting state (V*, w*) of an AdEx neuron without input."""
    f = lambda v: -p["gL"] * (v - p["EL"]) + p["gL"] * p["DT"] * math.exp((v - p["VT"]) / p["DT"]) \
        - p["a"] * (v - p["EL"])
    v = brentq(f, p["EL"] - 5.0, p["VT"] - p["DT"], xtol=1e-15, rtol=1e-15)
    return v, p["a"] * (v - p["EL"])


@pytest.mark.parametrize("kind", ["exp", "alpha", "beta"])
def test_conductance_at_rest_reversal_leaves_v_unchanged(kind):
    p = dict(BG, I=0.0)
    v_rest, w_rest = _rest(p)
    rec = {"kind": kind, "tau_decay": 3.0, "E_rev": v_rest}
    if kind == "beta":
        rec["tau_rise"] = 0.5
    te = np.array([1.0, 2.0, 2.0, 10.0, 10.1])
    t = np.linspace(0.0, 40.0, 401)
    r = simulate_reference(p, 40.0, v0=v_rest, w0=w_rest, t_eval=t, receptors=[rec], events=[(te, 50.0)])
    assert np.max(r["g"][0]) > 10.0  # a large conductance, and no effect
    np.testing.assert_allclose(r["v"], v_rest, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r["w"], w_rest, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r["i_syn"], 0.0, rtol=0, atol=1e-6)


def test_subthreshold_conductances_match_augmented_ode():
    """AdEx (DT > 0) with exp, alpha and beta conductances and a current receptor, against the
    plain ODE in (V, w, g_1, h_1, ...) restarted at the events (DOP853, tight tolerances)."""
    p = dict(BG, I=200.0)
    recs = [{"kind": "exp", "tau_decay": 0.2, "E_rev": 0.0},
            {"kind": "alpha", "tau_decay": 2.0, "E_rev": -85.0},
            {"kind": "beta", "tau_rise": 0.5, "tau_decay": 3.0, "E_rev": -80.0},
            {"kind": "exp", "tau_decay": 2.0, "E_rev": None}]
    rng = np.random.default_rng(5)
    T = 100.0
    ev = [(_poisson(rng, 300.0, T), 2.0), (_poisson(rng, 200.0, T), 1.0), (_poisson(rng, 100.0, T), 1.0),
          (_poisson(rng, 200.0, T), 40.0)]
    t = np.linspace(0.0, T, 501)
    r = simulate_reference(p, T, t_eval=t, receptors=recs, events=ev)
    assert len(r["spikes"]) == 0 and np.max(r["v"]) > p["EL"] + 2.0

    tau_d = [0.2, 2.0, 3.0, 2.0]
    tau_r = [0.2, 2.0, 0.5, 2.0]
    norm = [1.0, math.e / 2.0, _nest_beta_g0(0.5, 3.0), 1.0]
    h_kind = [False, True, True, False]

    def rhs(_, y):
        v, w = y[0], y[1]
        g, h = y[2::2], y[3::2]
        isyn = sum(g[k] * (0.0 - v if k == 0 else (-85.0 - v) if k == 1 else (-80.0 - v) if k == 2 else 1.0)
                   for k in range(4))
        dv = (-p["gL"] * (v - p["EL"]) + p["gL"] * p["DT"] * math.exp((v - p["VT"]) / p["DT"]) - w
              + p["I"] + isyn) / p["C"]
        out = [dv, (p["a"] * (v - p["EL"]) - w) / p["tau_w"]]
        for k in range(4):
            out += [h[k] - g[k] / tau_d[k], -h[k] / tau_r[k]]
        return out

    y = np.array([p["EL"], 0.0] + [0.0] * 8)
    breaks = np.unique(np.concatenate([e[0] for e in ev] + [[T]]))
    t0 = 0.0
    v_ode = np.empty_like(t)
    g_ode = np.empty((4, len(t)))
    for tb in breaks:
        m = (t >= t0) & (t < tb) if tb < T else (t >= t0)
        if tb > t0:
            sol = solve_ivp(rhs, (t0, tb), y, method="DOP853", rtol=1e-12, atol=1e-13, dense_output=True)
            if m.any():
                yy = sol.sol(t[m])
                v_ode[m], g_ode[:, m] = yy[0], yy[2::2]
            y = sol.y[:, -1].copy()
        for k, (tk, wk) in enumerate(ev):
            n_k = np.count_nonzero(tk == tb)
            y[2 + 2 * k + (1 if h_kind[k] else 0)] += n_k * wk * norm[k]
        t0 = tb
    np.testing.assert_allclose(r["g"], g_ode, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(r["v"], v_ode, rtol=0, atol=1e-7)


# 4 ------------------------------------------------------------------------
def test_refractory_clamp_with_receptors():
    """V is held at Vr while the receptors keep evolving (unaffected by the spikes)."""
    p = dict(BG, I=900.0)
    t_ref = 2.0
    recs = [{"kind": "exp", "tau_decay": 2.0, "E_rev": -85.0}]
    te = np.arange(1.0, 200.0, 0.7)
    r = simulate_reference(p, 200.0, t_ref=t_ref, receptors=recs, events=[(te, 0.5)])
    s = r["spikes"]
    assert len(s) >= 2
    for ts in s[s + t_ref < 200.0]:
        tq = ts + np.linspace(0.0, t_ref, 41)
        v, _ = r["state"](tq)
        assert np.all(v == p["Vr"])
    # the receptor state is the same as without any spikes (the passive membrane)
    passive = simulate_reference(PASSIVE, 200.0, receptors=recs, events=[(te, 0.5)])
    tq = np.linspace(0.0, 200.0, 4001)
    np.testing.assert_array_equal(r["receptor_state"](tq), passive["receptor_state"](tq))


def test_no_receptors_is_backward_compatible():
    p = preset("adapting")
    t = np.linspace(0.0, 200.0, 201)
    r0 = simulate_reference(p, 200.0, t_eval=t)
    r1 = simulate_reference(p, 200.0, t_eval=t, receptors=[], events=[])
    r2 = simulate_reference(p, 200.0, t_eval=t, receptors=[{"kind": "alpha", "tau_decay": 1.0, "E_rev": 0.0}])
    r3 = simulate_reference(p, 200.0, t_eval=t, receptors=[{"kind": "exp", "tau_decay": 1.0, "E_rev": 0.0}],
                            events=[([50.0], [0.0])])
    for r in (r1, r2):
        np.testing.assert_array_equal(r["spikes"], r0["spikes"])
        np.testing.assert_array_equal(r["v"], r0["v"])
    np.testing.assert_allclose(r3["spikes"], r0["spikes"], rtol=0, atol=1e-8)  # one restart at 50 ms
    assert r0["g"].shape == (0, len(t)) and r2["g"].shape == (1, len(t))
    np.testing.assert_array_equal(r0["i_syn"], 0.0)


# 5 ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["exp", "alpha", "beta"])
def test_poisson_spiking_converged_under_tolerance_halving(kind):
    rng = np.random.default_rng(11)
    T = 500.0
    ex, inh = _poisson(rng, 15 * 20.0, T), _poisson(rng, 8 * 20.0, T)
    if kind == "beta":
        recs = [{"kind": "beta", "tau_rise": 0.2, "tau_decay": 2.0, "E_rev": 0.0},
                {"kind": "beta", "tau_rise": 0.5, "tau_decay": 5.0, "E_rev": -85.0}]
    else:
        recs = [{"kind": kind, "tau_decay": 0.2, "E_rev": 0.0}, {"kind": kind, "tau_decay": 2.0, "E_rev": -85.0}]
    w_ex = {"exp": 15.0, "alpha": 6.0, "beta": 4.0}[kind]
    kw = dict(I=700.0, receptors=recs, events=[(ex, w_ex), (inh, 2.0)])
    s1 = spike_times(BG, T, **kw)
    s2 = spike_times(BG, T, rtol=0.5e-11, atol_scale=0.5, **kw)
    assert len(s1) == len(s2) >= 5
    assert np.max(np.abs(s1 - s2)) < 1e-7


# 6 ------------------------------------------------------------------------
@pytest.mark.parametrize("receptors,events,match", [
    ([{"kind": "exp", "tau_decay": 0.0, "E_rev": 0.0}], None, r"receptors\[0\]\['tau_decay'\] must be"),
    ([{"kind": "exp", "tau_decay": -1.0, "E_rev": 0.0}], None, r"receptors\[0\]\['tau_decay'\]"),
    ([{"kind": "exp", "tau_decay": 1.0}], None, r"receptors\[0\]\['E_rev'\] is required"),
    ([{"kind": "exp", "E_rev": 0.0}], None, r"receptors\[0\]\['tau_decay'\] \(ms\) is required"),
    ([{"kind": "gauss", "tau_decay": 1.0, "E_rev": 0.0}], None, r"receptors\[0\]\['kind'\]"),
    ([{"kind": "beta", "tau_rise": 3.0, "tau_decay": 2.0, "E_rev": 0.0}], None, r"tau_rise .* <= tau_decay"),
    ([{"kind": "beta", "tau_rise": 0.0, "tau_decay": 2.0, "E_rev": 0.0}], None, r"\['tau_rise'\] must be"),
    ([{"kind": "beta", "tau_decay": 2.0, "E_rev": 0.0}], None, r"\['tau_rise'\] \(ms\) is required"),
    ([{"kind": "exp", "tau_rise": 1.0, "tau_decay": 2.0, "E_rev": 0.0}], None, r"only for kind 'beta'"),
    ([{"kind": "exp", "tau_syn": 1.0, "E_rev": 0.0}], None, r"unknown keys \['tau_syn'\]"),
    ([{"kind": "exp", "tau_decay": 1.0, "E_rev": math.nan}], None, r"\['E_rev'\] must be finite"),
    ([{"kind": "exp", "tau_decay": 1.0, "E_rev": 0.0}], [([1.0], [-1.0])], r"events\[0\] weights must be >= 0"),
    ([{"kind": "exp", "tau_decay": 1.0, "E_rev": 0.0}], [([1.0], [math.inf])], r"events\[0\] weights must be finite"),
    ([{"kind": "exp", "tau_decay": 1.0, "E_rev": None}], [([-1.0], [1.0])], r"events\[0\] times must be"),
    ([{"kind": "exp", "tau_decay": 1.0, "E_rev": None}], [([1.0, 2.0], [1.0])], r"events\[0\]: 2 times but 1"),
    ([{"kind": "exp", "tau_decay": 1.0, "E_rev": None}], [], r"one \(times, weights\) pair per receptor"),
    (None, [([1.0], [1.0])], r"one \(times, weights\) pair per receptor"),
])
def test_invalid_receptors_rejected(receptors, events, match):
    with pytest.raises(ValueError, match=match):
        simulate_reference(PASSIVE, 10.0, receptors=receptors, events=events)


def test_current_receptor_accepts_negative_weights():
    r = simulate_reference(PASSIVE, 10.0, t_eval=[5.0], receptors=[{"kind": "exp", "tau_decay": 1.0, "E_rev": None}],
                           events=[([5.0], [-100.0])])
    assert r["g"][0, 0] == -100.0 and r["i_syn"][0] == -100.0


# 7 ------------------------------------------------------------------------
def test_benchmark_problems_and_comparison():
    """benchmarks/receptors_nest.py: the problems' merged events, the runner hook and the error measures."""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                        "receptors_nest.py")
    spec = importlib.util.spec_from_file_location("receptors_nest", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    problems = bench.make_problems()
    assert len(problems) == 2 * len(bench.PROBLEM_SPECS)
    for prob in problems:
        assert len(prob.events) == len(prob.receptors) == 2
        for (times, weights), trains in zip(prob.events, prob.inputs):
            assert len(times) == sum(len(tr) for tr, _ in trains) > 0
            assert np.all(np.diff(times) >= 0) and times[0] >= 2 * bench.GRID - 1e-12
            np.testing.assert_allclose(times / bench.GRID, np.round(times / bench.GRID), atol=1e-9)
    ref = np.array([1.02, 5.0, 7.55])
    grid_times = np.array([1.1, 5.0, 7.6])
    c = bench.compare(ref, grid_times, grid=0.1)
    assert c["n"] == 3 and c["off_step"] == 0 and abs(c["max_err"] - 0.08) < 1e-12
    assert bench.compare(ref, np.array([1.1, 5.1]), grid=0.1)["off_step"] == 2  # one late, one missing
    bench.register_runner("test runner", lambda prob: grid_times, grid=0.1)
    try:
        assert bench.RUNNER_GRID["test runner"] == 0.1 and "test runner" in bench.RUNNERS
    finally:
        bench.RUNNERS.pop("test runner")
        bench.RUNNER_GRID.pop("test runner")
