"""Synaptic receptors in the numerics (ngc_adex.numerics.receptors and every integrator):
closed-form kinetics, the membrane under receptor input against closed forms and a scipy
solution of the same equations, and finiteness under extreme conductances."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from ngc_adex import numerics, preset_kwargs
from ngc_adex.numerics import receptors as R

KW = preset_kwargs("brette_gerstner_2005")


def _coeffs(recs, dtype=jnp.float64, **over):
    kw = {**KW, **over}
    return numerics.coefficients(numerics.AdExParams(**{k: np.float64(kw[k]) for k in numerics.AdExParams._fields}),
                                 dtype, recs)


@pytest.mark.parametrize("kind,tau_rise", [("alpha", None), ("beta", 0.7)])
def test_alpha_and_beta_peak_at_the_weight(kind, tau_rise):
    """One event of weight q: g peaks at q, at tau ("alpha") or at NEST's t_peak ("beta"), found
    here by dense evaluation of the closed form."""
    with jax.enable_x64(True):
        c = _coeffs((R.ReceptorParams(kind, 3., tau_rise, 0.),))
        state = R.deliver(R.ReceptorState(jnp.zeros((1, 1)), jnp.zeros((1, 1))), jnp.full((1, 1), 2.5), c.receptors)
        t = jnp.linspace(0., 20., 200001)
        g = np.asarray(R.evolve(R.ReceptorState(state.g[:, :, None], state.h[:, :, None]), t, c.receptors).g)[0, 0]
        t_peak = 3. if kind == "alpha" else 3. * 0.7 * np.log(3. / 0.7) / (3. - 0.7)
        assert abs(g.max() - 2.5) < 1e-9
        assert abs(float(t[g.argmax()]) - t_peak) <= 1e-4


def test_evolution_composes_and_taylor_coefficients_sum_to_it():
    with jax.enable_x64(True):
        recs = (R.ReceptorParams("exp", 5., None, 0.), R.ReceptorParams("alpha", 2., None, -80.),
                R.ReceptorParams("beta", 4., 0.5, -70.), R.ReceptorParams("exp", 2., None, None))
        c = _coeffs(recs)
        rng = np.random.default_rng(0)
        state = R.ReceptorState(jnp.asarray(rng.uniform(0, 5, (4, 1, 3))), jnp.asarray(rng.uniform(0, 2, (4, 1, 3))))
        a, b = 0.37, 1.9
        twice = R.evolve(R.evolve(state, a, c.receptors), b, c.receptors)
        once = R.evolve(state, a + b, c.receptors)
        np.testing.assert_allclose(twice.g, once.g, rtol=1e-13)
        np.testing.assert_allclose(twice.h, once.h, rtol=1e-13)
        span, order = 0.1, 12
        Gs, Js = R.taylor_totals(state, span, order, c.receptors)
        for theta in (0.3, 1.):
            G, J = R.totals_at(state, theta * span, c.receptors)
            np.testing.assert_allclose(sum(x * theta ** n for n, x in enumerate(Gs)), G, rtol=1e-13)
            np.testing.assert_allclose(sum(x * theta ** n for n, x in enumerate(Js)), J, rtol=1e-13)


def _run(method, c, n_steps, dt, j, weights, v0, dtype, refractory=False):
    """Final state and spike times of one neuron per lane, receptors fed ``weights`` (steps, K, 1, n)."""
    n = weights.shape[-1]
    z = jnp.zeros((1, n), dtype)
    state = numerics.AdExState(z + v0, z, z, z, z, z)
    syn = R.ReceptorState(jnp.zeros((len(c.receptors), 1, n), dtype), jnp.zeros((len(c.receptors), 1, n), dtype))

    def body(carry, x):
        i, wq = x
        s, g = numerics.advance(*carry[:1], j, (i + 1) * dt, dt, c, method, refractory, True, carry[1], wq)
        return (s, g), (s.s, s.t_spike)

    (s, g), (spikes, t_spike) = jax.jit(lambda: jax.lax.scan(
        body, (state, syn), (jnp.arange(n_steps, dtype=dtype), jnp.asarray(weights, dtype))))()
    spikes, t_spike = np.asarray(spikes)[:, 0], np.asarray(t_spike)[:, 0]
    return s, g, [t_spike[spikes[:, k] > 0, k] for k in range(n)]


def _scipy_subthreshold(c_kw, recs, g0, h0, T, v0, w0):
    """v(T), w(T) of the membrane with receptors started at (g0, h0), by scipy at rtol 1e-12."""
    from scipy.integrate import solve_ivp
    p = c_kw
    lam = [(1. / r.tau_decay, (1. / r.tau_rise if r.kind == "beta" else 1. / r.tau_decay)) for r in recs]

    def f(t, y):
        v, w = y[0], y[1]
        g, h = y[2:2 + len(recs)], y[2 + len(recs):]
        dg = [(0. if r.kind == "exp" else h[k]) - lam[k][0] * g[k] for k, r in enumerate(recs)]
        dh = [0. if r.kind == "exp" else -lam[k][1] * h[k] for k, r in enumerate(recs)]
        i_syn = sum(-g[k] * (v - r.e_rev) if r.e_rev is not None else g[k] for k, r in enumerate(recs))
        dv = (-(v - p["v_rest"]) + p["v_sharpness"] * np.exp((v - p["intrinsic_mem_thr"]) / p["v_sharpness"])
              - p["resist_m"] * w + p["resist_m"] * i_syn) / p["tau_m"]
        dw = (p["a"] * (v - p["v_rest"]) - w) / p["tau_w"]
        return [dv, dw, *dg, *dh]

    sol = solve_ivp(f, (0., T), [v0, w0, *g0, *h0], method="DOP853", rtol=1e-12, atol=1e-12)
    return sol.y[0, -1], sol.y[1, -1]


RECS = (R.ReceptorParams("exp", 5., None, 0.), R.ReceptorParams("alpha", 2., None, -80.),
        R.ReceptorParams("beta", 3., 0.5, -75.), R.ReceptorParams("exp", 2., None, None))
WEIGHTS = (6., 8., 5., 150.)  # nS, nS, nS, pA: one event each at t = 0


@pytest.mark.slow
def test_convergence_order_with_receptors_below_threshold():
    """Every integrator (euler excepted: ngc-learn's synapse order is first order by design) keeps its
    order with all four receptor kinds acting, against scipy on the same equations (float64)."""
    # precise: at least the order of its receptor-less series (its error here falls faster still)
    expected = {"midpoint": 2, "heun": 2, "ralston": 2, "rk4": 4, "precise": numerics.series.SERIES_ORDER["float64"]}
    T, v0 = 20., -60.
    with jax.enable_x64(True):
        c = _coeffs(RECS)
        state0 = R.deliver(R.ReceptorState(jnp.zeros((4, 1, 1)), jnp.zeros((4, 1, 1))),
                           jnp.asarray(WEIGHTS)[:, None, None], c.receptors)
        ref_v, ref_w = _scipy_subthreshold(KW, RECS, np.asarray(state0.g).ravel(), np.asarray(state0.h).ravel(),
                                           T, v0, 0.)
        assert -70. < ref_v < KW["intrinsic_mem_thr"]  # subthreshold all along (no spike in the run)
        for method, order in expected.items():
            dts = (0.5, 0.4, 0.3125) if method == "precise" else (0.2, 0.1, 0.05)
            errs = []
            for dt in dts:
                n = int(round(T / dt))
                w = np.zeros((n, 4, 1, 1))
                w[0, :, 0, 0] = WEIGHTS
                s, _, trains = _run(method, c, n, dt, 0., w, v0, jnp.float64)
                assert len(trains[0]) == 0
                errs.append(abs(float(s.v[0, 0]) - ref_v) + abs(float(s.w[0, 0]) - ref_w))
            errs = np.array(errs)
            slopes = np.log(errs[:-1] / errs[1:]) / np.log(np.array(dts[:-1]) / np.array(dts[1:]))
            # at least the order; the Runge-Kutta methods at it
            assert np.all(slopes > order - 0.4) and (method == "precise" or np.all(slopes < order + 0.4)), \
                (method, errs, slopes)


def test_passive_membrane_under_a_current_receptor_matches_its_closed_form():
    """v_sharpness = 0, a = b = 0: one event q into an "exp" current receptor from rest gives
    v - v_rest = R q tau_s/(tau_s - tau_m) (e^(-t/tau_s) - e^(-t/tau_m))."""
    tau_s, q = 3., 200.
    over = dict(v_sharpness=0., a=0., b=0., thr=50.)
    kw = {**KW, **over}
    with jax.enable_x64(True):
        c = _coeffs((R.ReceptorParams("exp", tau_s, None, None),), **over)
        T, dt = 30., 0.1
        n = int(round(T / dt))
        w = np.zeros((n, 1, 1, 1))
        w[0] = q
        exact = kw["v_rest"] + kw["resist_m"] * q * tau_s / (tau_s - kw["tau_m"]) * (
            np.exp(-T / tau_s) - np.exp(-T / kw["tau_m"]))
        for method, tol in (("precise", 1e-10), ("rk4", 1e-6), ("midpoint", 2e-3)):
            s, _, _ = _run(method, c, n, dt, 0., w, kw["v_rest"], jnp.float64)
            assert abs(float(s.v[0, 0]) - exact) < tol, method


@pytest.mark.parametrize("method", numerics.METHODS)
def test_extreme_conductances_and_time_constants_stay_finite(method):
    recs = (R.ReceptorParams("exp", 1e-3, None, 0.), R.ReceptorParams("beta", 1e3, 1e-3, -80.),
            R.ReceptorParams("alpha", 1e-2, None, 50.), R.ReceptorParams("exp", 1e-3, None, None))
    c = _coeffs(recs, jnp.float32)
    n = 400
    rng = np.random.default_rng(3)
    w = rng.choice([0., 1e6, 1e9, -1e3, -1e9], size=(n, 4, 1, 6)) * (rng.random((n, 4, 1, 6)) < 0.2)
    s, g, trains = _run(method, c, n, 0.1, 300., w, -65., jnp.float32, refractory=True)
    for x in (*s, *g):
        assert np.isfinite(np.asarray(x)).all(), method
    assert (np.asarray(s.v) <= max(KW["thr"], KW["v_reset"])).all()


# --- spiking under Poisson input against the reference -------------------------------------------
BG = dict(C=281.0, g_L=30.0, E_L=-70.6, V_T=-50.4, Delta_T=2.0, a=4.0, tau_w=144.0, b=80.5, V_reset=-70.6,
          V_peak=0.0)
#: (receptors in the reference's format, excitatory and inhibitory weight): NEST's aeif_cond_exp,
#: aeif_cond_alpha, aeif_cond_beta_multisynapse and aeif_psc_exp with their default time constants
POISSON_CASES = {
    "cond_exp": ([dict(kind="exp", tau_decay=0.2, E_rev=0.0), dict(kind="exp", tau_decay=2.0, E_rev=-85.0)], 60., 6.),
    "cond_alpha": ([dict(kind="alpha", tau_decay=0.2, E_rev=0.0), dict(kind="alpha", tau_decay=2.0, E_rev=-85.0)],
                   25., 2.5),
    "cond_beta": ([dict(kind="beta", tau_rise=0.2, tau_decay=2.0, E_rev=0.0),
                   dict(kind="beta", tau_rise=0.5, tau_decay=5.0, E_rev=-85.0)], 4., 1.),
    "psc_exp": ([dict(kind="exp", tau_decay=0.2, E_rev=None), dict(kind="exp", tau_decay=2.0, E_rev=None)],
                3000., -250.),
}


def _poisson_events(w_ex, w_in, T=500., dt=0.1, seed=2024):
    """20 excitatory and 10 inhibitory Poisson trains at 20 Hz on the dt grid, merged per receptor."""
    rng = np.random.default_rng(seed)
    events = []
    for n, weight in ((20, w_ex), (10, w_in)):
        steps = np.concatenate([np.unique(rng.integers(2, int(T / dt), rng.poisson(20. * T / 1000.)))
                                for _ in range(n)])
        events.append((np.sort(steps) * dt, np.full(len(steps), weight)))
    return events


@pytest.mark.slow
@pytest.mark.parametrize("case", POISSON_CASES)
def test_precise_spike_times_under_poisson_receptor_input(case):
    """precise at dt = 0.1 ms in float32 against the reference: exact counts, median |error| <= 1e-3 ms."""
    from ngc_adex import from_physical
    from ngc_adex.reference import simulate_reference
    recs, w_ex, w_in = POISSON_CASES[case]
    T, dt, current = 500., 0.1, 700.
    events = _poisson_events(w_ex, w_in)
    ref = simulate_reference({**{"C": BG["C"], "gL": BG["g_L"], "EL": BG["E_L"], "VT": BG["V_T"], "DT": BG["Delta_T"],
                                 "a": BG["a"], "tau_w": BG["tau_w"], "b": BG["b"], "Vr": BG["V_reset"],
                                 "V_peak": BG["V_peak"]}}, T, I=current, receptors=recs, events=events)["spikes"]
    kw = from_physical(**BG)
    c = numerics.coefficients(numerics.AdExParams(**{k: np.float64(kw[k]) for k in numerics.AdExParams._fields}),
                              jnp.float32, [R.ReceptorParams(r["kind"], r["tau_decay"], r.get("tau_rise"), r["E_rev"])
                                            for r in recs])
    n = int(round(T / dt))
    w = np.zeros((n, len(recs), 1, 1))
    for k, (times, weights) in enumerate(events):
        np.add.at(w[:, k, 0, 0], np.round(times / dt).astype(int), weights)  # acts at the step's start
    _, _, (times,) = _run("precise", c, n, dt, current, w, kw["v0"], jnp.float32)
    assert len(ref) > 5 and len(times) == len(ref), (len(times), len(ref))
    assert np.median(np.abs(times - ref)) <= 1e-3, np.abs(times - ref)


@pytest.mark.slow
@pytest.mark.parametrize("sharpness,weight,current,bound", [(0.5, 400., 300., 2e-3), (2., 1500., 0., 0.1)])
def test_precise_covers_steps_under_coincident_bursts(sharpness, weight, current, bound):
    """Bursts of coincident excitatory input into a fast (0.2 ms) conductance move v by tens of
    v_sharpness in a step (sub-flights, then rk4 flights, cover it): the reference's count and a mean
    spike-time error below ``bound`` and a tenth of rk4's. The larger bound: second spikes after the
    reset under the same burst, timed through the step after a spike."""
    from ngc_adex import from_physical
    from ngc_adex.reference import simulate_reference
    T, dt = 300., 0.1
    recs = POISSON_CASES["cond_exp"][0]
    rng = np.random.default_rng(7)
    steps = np.unique(rng.integers(2, int(T / dt), rng.poisson(40. * T / 1000.)))  # one event: one burst
    bg = dict(BG, Delta_T=sharpness)
    ref = simulate_reference({"C": bg["C"], "gL": bg["g_L"], "EL": bg["E_L"], "VT": bg["V_T"], "DT": sharpness,
                              "a": bg["a"], "tau_w": bg["tau_w"], "b": bg["b"], "Vr": bg["V_reset"],
                              "V_peak": bg["V_peak"]}, T, I=current, receptors=recs,
                             events=[(steps * dt, np.full(len(steps), weight)), (np.array([]), np.array([]))])["spikes"]
    kw = from_physical(**bg)
    c = numerics.coefficients(numerics.AdExParams(**{k: np.float64(kw[k]) for k in numerics.AdExParams._fields}),
                              jnp.float32, [R.ReceptorParams(r["kind"], r["tau_decay"], None, r["E_rev"]) for r in recs])
    w = np.zeros((int(round(T / dt)), 2, 1, 1))
    w[steps, 0, 0, 0] = weight
    err = {}
    for method in ("precise", "rk4"):
        _, _, (times,) = _run(method, c, w.shape[0], dt, current, w, kw["v0"], jnp.float32)
        k = min(len(times), len(ref))
        err[method] = np.abs(times[:k] - ref[:k]).mean()
        if method == "precise":
            assert len(ref) > 5 and len(times) == len(ref), (len(times), len(ref))
    assert err["precise"] <= min(bound, 0.1 * err["rk4"]), err


# --- hypothesis: any valid receptor set and any finite input stays finite -----------------------
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_TAU = st.floats(1e-3, 1e4)


@st.composite
def _receptor_sets(draw):
    recs = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(R.KINDS))
        tau_decay = draw(_TAU)
        tau_rise = tau_decay * draw(st.floats(1e-3, 0.99)) if kind == "beta" else None
        e_rev = draw(st.one_of(st.none(), st.floats(-1e3, 1e3)))
        recs.append(R.ReceptorParams(kind, tau_decay, tau_rise, e_rev))
    return tuple(recs)


@pytest.mark.slow
@pytest.mark.parametrize("method", numerics.METHODS)
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(recs=_receptor_sets(), seed=st.integers(0, 2 ** 31 - 1), scale=st.sampled_from([1., 1e3, 1e6, 1e9]),
       negative=st.booleans(), dt=st.sampled_from([0.01, 0.1, 1.0]))
def test_any_receptor_set_and_input_stays_finite(method, recs, seed, scale, negative, dt):
    c = _coeffs(recs, jnp.float32)
    rng = np.random.default_rng(seed)
    n = 60
    w = scale * rng.random((n, len(recs), 1, 4)) * (rng.random((n, len(recs), 1, 4)) < 0.3)
    if negative:
        w = -w
    s, g, _ = _run(method, c, n, dt, 500., w, -65., jnp.float32, refractory=bool(seed % 2))
    for x in (*s, *g):
        assert np.isfinite(np.asarray(x)).all(), (method, recs)
    assert (np.asarray(s.v) <= max(KW["thr"], KW["v_reset"])).all()
