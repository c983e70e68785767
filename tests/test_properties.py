"""Property-based robustness tests (hypothesis) of the AdEx dynamics and cell.

Over valid parameter sets, extreme ones included (v_sharpness 0 or 1e-3..10 mV,
tau_m 0.1..1000 ms, tau_w 0.1..1e4 ms, dt 0.001..1 ms, currents -1e4..1e5,
refract_time 0..10 ms, per-neuron mixtures), for every integrator:

* v and w stay finite, v <= the spike potential after every step, s is 0/1;
* refractoriness: spike-time differences >= refract_time and v == v_reset
  while refractory time is left at the end of a step;

plus constructor validation, the input-current shape check, NaN isolation and
determinism. Example counts are kept small so the file runs in under 90 s;
set ``NGC_ADEX_LONG_TESTS=1`` for ten times as many examples and every
integrator in the compile-heavy component tests (NaN isolation through the
cell, determinism, large populations).

The pure path (``numerics.coefficients`` + ``numerics.advance`` under
``jax.lax.scan``) is jitted once per (integrator, refractory) with all
parameters as arguments and a fixed population shape, so the many examples
share eight compilations.
"""
import itertools
import os

import numpy as np
import jax
import jax.numpy as jnp
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from ngclearn import Context, MethodProcess
from ngcsimlib.context import contextManager
from ngcsimlib.global_state import stateManager

from ngc_adex import AdExCell, numerics
from ngc_adex import params as adex_params

LONG = os.environ.get("NGC_ADEX_LONG_TESTS", "").strip() not in ("", "0")


def _n(count):
    """Example count: ``count``, or ten times as many for the long sweep."""
    return count * 10 if LONG else count


SETTINGS = dict(deadline=None, derandomize=False, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

SHAPE = (2, 3)          # (batch_size, n_units): fixed so that jit compiles once per integrator
N_NEURONS = SHAPE[0] * SHAPE[1]
N_STEPS = 200
F32 = np.float32
_names = itertools.count()


# ----------------------------------------------------------------------------
# strategies: valid parameter sets
# ----------------------------------------------------------------------------
def _log_floats(lo, hi):
    """Log-uniform floats in [lo, hi], endpoints drawn often."""
    return st.one_of(
        st.sampled_from([lo, hi]),
        st.floats(np.log10(lo), np.log10(hi)).map(lambda x: float(min(max(10. ** x, lo), hi))))


TAU_M = st.one_of(_log_floats(0.1, 1000.), st.sampled_from([1e-6, 2e9, 1e30]))
TAU_W = st.one_of(_log_floats(0.1, 1e4), st.sampled_from([1e-6, 1e10, 3e38]))  # 1e10: adaptation off
SHARPNESS = st.one_of(st.just(0.), _log_floats(1e-3, 10.), st.sampled_from([1e-30, 1e-6, 1e3]))
RESIST = st.one_of(st.just(1.), st.just(0.), st.floats(1., 100.).map(lambda g_l: 1. / g_l))  # 1/g_L, g_L in nS
REFRACT = st.one_of(st.just(0.), st.sampled_from([10., 1e-3]), st.floats(0., 10.))
CURRENT = st.one_of(st.sampled_from([-1e4, 0., 1e5]), st.floats(-1e4, 1e5), st.floats(-100., 2000.))
DT = st.one_of(st.sampled_from([0.001, 1.]), _log_floats(0.001, 1.))
V_T = st.floats(-70., -30.)
# thr - intrinsic_mem_thr: spike detection above V_T, at it, or below it (ngc-learn's own test: thr < V_T)
PEAK_GAP = st.one_of(_log_floats(1e-4, 100.), st.just(0.), _log_floats(1e-3, 60.).map(lambda x: -x))
RESET_GAP = st.one_of(_log_floats(1e-3, 60.), st.sampled_from([0., -1., -30.]))  # spike potential - v_reset
V0_GAP = st.one_of(st.just(0.), st.floats(0., 100.), st.sampled_from([-5., -1e20]))  # spike potential - v0
V_REST = st.floats(-90., -40.)
A = st.one_of(st.just(0.), st.sampled_from([-10., 1000., 1e20]), st.floats(-10., 100.))
B = st.one_of(st.just(0.), st.floats(-50., 500.))
W0 = st.one_of(st.just(0.), st.floats(-1e3, 1e3))


def _per_neuron(draw, strategy, mixed):
    """A (batch, n_units) array: one value, or (in mixed populations) one per neuron."""
    if mixed and draw(st.booleans()):
        return np.array(draw(st.lists(strategy, min_size=N_NEURONS, max_size=N_NEURONS)),
                        dtype=np.float64).reshape(SHAPE)
    return np.full(SHAPE, draw(strategy), dtype=np.float64)


@st.composite
def populations(draw, refractory=None):
    """(kwargs of AdExCell, dt, currents (N_STEPS, *SHAPE) float32); kwargs are
    float64 arrays of shape SHAPE, valid by construction."""
    mixed = draw(st.booleans())
    pn = lambda s: _per_neuron(draw, s, mixed)
    p = dict(tau_m=pn(TAU_M), resist_m=pn(RESIST), tau_w=pn(TAU_W), v_rest=pn(V_REST), a=pn(A), b=pn(B),
             w0=pn(W0))
    sharp = pn(SHARPNESS)
    if mixed and draw(st.booleans()):  # a mixture with integrate-and-fire (v_sharpness = 0) neurons
        sharp.reshape(-1)[draw(st.integers(0, N_NEURONS - 1))] = 0.
    p["v_sharpness"] = sharp
    v_t = pn(V_T)
    thr = v_t + pn(PEAK_GAP)
    if draw(st.booleans()):  # where v_sharpness = 0, thr may equal intrinsic_mem_thr
        thr = np.where(sharp == 0., v_t, thr)
    p["intrinsic_mem_thr"], p["thr"] = v_t, thr
    v_spike = np.where(sharp > 0., thr, np.minimum(thr, v_t))
    p["v_reset"] = v_spike - pn(RESET_GAP)
    p["v0"] = v_spike - pn(V0_GAP)
    use_refract = draw(st.booleans()) if refractory is None else refractory
    p["refract_time"] = pn(REFRACT) if use_refract else np.zeros(SHAPE)
    dt = draw(DT)

    base = pn(CURRENT)
    kind = draw(st.sampled_from(["constant", "noisy", "on-off"]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    j = np.broadcast_to(base, (N_STEPS,) + SHAPE)
    if kind == "noisy":
        j = j + draw(st.floats(0., 1e4)) * rng.standard_normal(j.shape)
    elif kind == "on-off":
        j = j * (rng.random(j.shape) < 0.5)
    j = np.clip(j, -1e4, 1e5).astype(F32)
    return p, dt, j


def _validated(p):
    """The package's own validation must accept every generated set."""
    _, _, values = adex_params.validate(SHAPE[1], SHAPE[0], **p)
    return values


def _adex_params(values):
    return numerics.AdExParams(**{k: values[k] for k in numerics.AdExParams._fields})


# ----------------------------------------------------------------------------
# the pure path: one jit per (method, refractory), parameters as arguments
# ----------------------------------------------------------------------------
_RUNNERS = {}


def _runner(method, refractory):
    key = (method, refractory)
    if key not in _RUNNERS:
        def run(c, v0, w0, js, dt):
            zero = jnp.zeros_like(v0)
            state = numerics.AdExState(v0, w0, zero, zero, zero, zero)

            def body(s, x):
                i, j = x
                t = (i + 1).astype(dt.dtype) * dt
                s = numerics.advance(s, j, t, dt, c, method, refractory)
                return s, s
            return jax.lax.scan(body, state, (jnp.arange(js.shape[0]), js))[1]
        _RUNNERS[key] = jax.jit(run)
    return _RUNNERS[key]


def _run_pure(values, dt, j, method):
    c = numerics.coefficients(_adex_params(values))
    refractory = bool(np.any(values["refract_time"] > 0))
    shape = j.shape[1:]
    v0, w0 = (np.broadcast_to(values[k], shape) for k in ("v0", "w0"))
    traj = _runner(method, refractory)(c, jnp.asarray(v0, F32), jnp.asarray(w0, F32),
                                       jnp.asarray(j), jnp.asarray(dt, F32))
    return {k: np.asarray(v) for k, v in traj._asdict().items()}


def _times(n_steps, dt):
    """The step-end times exactly as the runners compute them (float32)."""
    return (np.arange(1, n_steps + 1).astype(F32) * F32(dt)).astype(F32)


def check_trajectory(traj, values, dt, t_end=None, context="", precise_times=True, method=None):
    """Every invariant of a run; ``traj`` holds arrays (n_steps, batch, n_units).
    Without ``precise_times`` (t_spike not tracked), refractoriness is checked on
    the grid times of the spikes (tols)."""
    v, w, s = traj["v"], traj["w"], traj["s"]
    n_steps = v.shape[0]
    assert np.all(np.isfinite(v)), f"non-finite v {context}"
    assert np.all(np.isfinite(w)), f"non-finite w {context}"
    shape = v.shape[1:]
    par = {k: np.broadcast_to(np.asarray(values[k], dtype=np.float64), shape)
           for k in ("v_sharpness", "thr", "intrinsic_mem_thr", "v_reset", "refract_time")}
    # spike potential, computed here (not taken from the package): thr, or min(thr, intrinsic_mem_thr) where
    # v_sharpness = 0; v never ends a step above it, or above v_reset where that is higher (a reset at or
    # above the spike potential: the neuron spikes again as soon as it is free)
    v_spike = np.where(par["v_sharpness"] > 0., par["thr"], np.minimum(par["thr"], par["intrinsic_mem_thr"]))
    v_top = np.clip(np.maximum(v_spike, par["v_reset"]), -numerics.STATE_BOUND, 2 * numerics.STATE_BOUND).astype(F32)
    assert np.all(v <= v_top), f"v above the spike potential by {np.max(v - v_top)} {context}"
    assert np.all((s == 0.) | (s == 1.)), f"s not 0/1 {context}"

    ref_left = traj["ref_left"]
    refract = par["refract_time"].astype(F32)
    assert np.all(ref_left >= 0.), f"negative ref_left {context}"
    assert np.all(ref_left <= refract * (1. + 1e-6) + 1e-6), f"ref_left above refract_time {context}"
    held = ref_left > 0.
    v_reset = np.broadcast_to(par["v_reset"].astype(F32), v.shape)
    assert np.all(v[held] == v_reset[held]), \
        f"v != v_reset while refractory (max diff {np.max(np.abs(v - v_reset)[held])}) {context}"

    t = _times(n_steps, dt) if t_end is None else t_end
    t_b = np.broadcast_to(t[:, None, None], v.shape)
    spiked = s > 0
    assert np.all(traj["tols"][spiked] == t_b[spiked]), f"tols is not the step time {context}"
    tol_t = 4 * np.finfo(F32).eps * (float(t[-1]) + float(np.max(refract)) + 1.) + 1e-6
    # ref_left counts a refractory period down by dt in float32: half an ulp of refract_time per step
    countdown = (float(np.max(refract)) / dt + 1.) * 0.5 * np.spacing(F32(np.max(refract)))
    if precise_times:
        # precise spike time inside its step (t - dt, t]
        ts = traj["t_spike"]
        assert np.all(ts[spiked] <= t_b[spiked] + tol_t), f"t_spike after its step {context}"
        assert np.all(ts[spiked] >= t_b[spiked] - dt - tol_t), f"t_spike before its step {context}"
        slack = 0.
    else:  # grid times: euler resets at the end of the step, the others at the crossing inside it
        ts = traj["tols"]
        slack = 0. if method == "euler" else dt
    # refractoriness: successive spikes of a neuron at least refract_time apart
    for b, u in np.ndindex(v.shape[1:]):
        times = ts[spiked[:, b, u], b, u].astype(np.float64)
        if times.size > 1:
            gaps = np.diff(times)
            assert np.all(gaps >= refract[b, u] - slack - tol_t - countdown), \
                f"neuron ({b}, {u}): spikes {np.min(gaps)} ms apart, refract_time {refract[b, u]} {context}"


# ----------------------------------------------------------------------------
# 1. invariants over valid parameter sets: pure path
# ----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("method", numerics.METHODS)
@settings(max_examples=_n(60), **SETTINGS)
@given(pop=populations())
def test_invariants_pure(method, pop):
    p, dt, j = pop
    values = _validated(p)
    traj = _run_pure(values, dt, j, method)
    check_trajectory(traj, values, dt, context=f"[{method}, dt={dt}]")


@pytest.mark.parametrize("method", numerics.METHODS)
def test_invariants_pure_extremes(method):
    """Hand-picked corners: tiny v_sharpness with a far peak (exponent cap),
    v_sharpness 0, fastest/slowest time constants, largest currents, dt = 1 ms."""
    rows = [  # tau_m, tau_w, v_sharp, resist, j, refract, a, b
        (0.1, 0.1, 1e-3, 1., 1e5, 0., 1000., 500.),
        (1000., 1e4, 10., 0.01, 1e5, 10., -10., -50.),
        (0.1, 1e4, 0., 1., -1e4, 0.5, 0., 0.),
        (15., 400., 2., 1., 30., 2., 0.1, 0.75),
        (0.1, 0.1, 10., 1., 1e5, 1e-3, 1000., 0.),
        (1000., 0.1, 1e-3, 0.01, -1e4, 10., 100., 500.),
    ]
    cols = np.array(rows, dtype=np.float64).T.reshape(8, *SHAPE)
    p = dict(tau_m=cols[0], tau_w=cols[1], v_sharpness=cols[2], resist_m=cols[3], refract_time=cols[5],
             a=cols[6], b=cols[7], intrinsic_mem_thr=np.full(SHAPE, -55.), v_rest=np.full(SHAPE, -72.),
             w0=np.zeros(SHAPE))
    p["thr"] = np.where(cols[2] > 0, 60., -55.)  # (thr - vT)/v_sharpness up to 1.15e5: far past EXP_CAP
    p["v_reset"] = np.full(SHAPE, -75.)
    p["v0"] = np.where(cols[2] > 0., p["thr"], -55.)  # start exactly at the spike potential
    values = _validated(p)
    j = np.broadcast_to(cols[4], (N_STEPS,) + SHAPE).astype(F32)
    for dt in (0.001, 0.1, 1.):
        traj = _run_pure(values, dt, j, method)
        check_trajectory(traj, values, dt, context=f"[{method}, dt={dt}]")
        assert traj["s"].sum() > 0


def _single(method, v_sharpness, v_t, thr, v_reset, refract, j, v0, dt=0.01, n_steps=N_STEPS):
    p = {k: np.full(SHAPE, v, dtype=np.float64) for k, v in _VALID.items()}
    p.update(v_sharpness=np.full(SHAPE, v_sharpness), intrinsic_mem_thr=np.full(SHAPE, v_t),
             thr=np.full(SHAPE, thr), v_reset=np.full(SHAPE, v_reset), refract_time=np.full(SHAPE, refract),
             v0=np.full(SHAPE, v0), a=np.zeros(SHAPE), b=np.zeros(SHAPE))
    values = _validated(p)
    j = np.full((n_steps,) + SHAPE, j, dtype=F32)
    return _run_pure(values, dt, j, method), values


@pytest.mark.parametrize("method", numerics.METHODS)
def test_refractory_with_reset_beyond_exponent_cap(method):
    """v_reset > intrinsic_mem_thr + EXP_CAP * v_sharpness (valid: v_reset < thr): the
    reset potential lies beyond the capped exponent. Found by test_invariants_pure[precise]
    (in transformed variables it spiked in every step despite refract_time)."""
    traj, values = _single(method, 1e-3, -55., 5., -54.9, 2., 0., v0=5.)
    check_trajectory(traj, values, 0.01, context=f"[{method}]")
    # one spike per neuron (at the first step: v0 = thr), then 2 ms = all 200 steps refractory
    assert np.all(traj["s"].sum(axis=0) == 1)


@pytest.mark.parametrize("method", numerics.METHODS)
def test_v_held_exactly_at_reset(method):
    """While refractory time is left, v is v_reset exactly (precise, through transformed
    variables, once came back off by a few ulps)."""
    traj, values = _single(method, 0.337, -35.704, 5., -50.383, 2., 500., v0=-40.)
    assert (traj["ref_left"] > 0).sum() > 50
    check_trajectory(traj, values, 0.01, context=f"[{method}]")


# ----------------------------------------------------------------------------
# 2. the same through the AdExCell component
# ----------------------------------------------------------------------------
def _build_cell(kwargs, method, watch=True):
    name = f"test_properties_{next(_names)}"
    with Context(name):
        cell = AdExCell("z", n_units=SHAPE[1], batch_size=SHAPE[0], integration_type=method,
                        key=jax.random.PRNGKey(7), **kwargs)
        advance = MethodProcess("advance") >> cell.advance_state
        reset = MethodProcess("reset") >> cell.reset
        if watch:
            advance.watch(cell.v, cell.w, cell.s, cell.ref_left, cell.tols, cell.t_spike)
    contextManager.remove_context(name)
    return cell, advance, reset


_WATCHED = ("v", "w", "s", "ref_left", "tols", "t_spike")


@pytest.mark.slow
@pytest.mark.parametrize("method", numerics.METHODS)
@settings(max_examples=_n(2), **SETTINGS)
@given(pop=populations())
def test_invariants_cell(method, pop):
    p, dt, j = pop
    values = _validated(p)
    # per-neuron arrays as JSON-safe lists, as a user (or Context.load) passes them
    cell, advance, reset = _build_cell({k: v.tolist() for k, v in p.items()}, method)
    reset.run()
    run = advance.run.compiled
    j_key = cell.j.target
    rows = jnp.asarray(advance.pack_rows(N_STEPS, t=lambda i: (i + 1) * F32(dt), dt=F32(dt)), dtype=F32)

    def body(ctx, x):
        row, j_t = x
        return run({**ctx, j_key: j_t}, row)
    _, watched = jax.lax.scan(body, dict(stateManager.state), (rows, jnp.asarray(j)))
    traj = {k: np.asarray(x) for k, x in zip(_WATCHED, watched)}
    t_end = np.asarray(rows[:, advance.get_keywords().index("t")])
    check_trajectory(traj, values, dt, t_end=t_end, context=f"[cell {method}, dt={dt}]",
                     precise_times=getattr(cell, "precise_times", True), method=method)


# ----------------------------------------------------------------------------
# 3. constructor validation
# ----------------------------------------------------------------------------
_VALID = dict(tau_m=15., resist_m=1., tau_w=400., v_sharpness=2., intrinsic_mem_thr=-55., thr=5.,
              v_rest=-72., v_reset=-75., a=0.1, b=0.75, v0=-70., w0=0., refract_time=0.)
_BAD_ANY = [("a string", "15"), ("None", None), ("a dict", {"x": 1.}), ("NaN", np.nan), ("inf", np.inf),
            ("-inf", -np.inf), ("a NaN entry", [1., np.nan, 1.]), ("a complex", 1j), ("a ragged list", [[1.], [1., 2.]]),
            ("shape (2,)", [1., 2.]), ("shape (2, 3)", [[1.] * 3] * 2), ("shape (3, 1)", [[1.]] * 3),
            ("too large for float32", 1e39), ("an object", object())]

_BAD_RANGE = [  # kwargs overriding _VALID, the argument to be named, a fragment of the allowed range
    (dict(tau_m=0.), "tau_m", "> 0"), (dict(tau_m=-1.), "tau_m", "> 0"), (dict(tau_m=1e-39), "tau_m", "> 0"),
    (dict(tau_m=[15., 0., 15.]), "tau_m", "> 0"),
    (dict(tau_w=0.), "tau_w", "> 0"), (dict(tau_w=-400.), "tau_w", "> 0"),
    (dict(resist_m=-1.), "resist_m", ">= 0"),
    (dict(v_sharpness=-1.), "v_sharpness", "> 0"), (dict(v_sharpness=1e-40), "v_sharpness", "> 0"),
    (dict(v_sharpness=[2., -0.5, 0.]), "v_sharpness", "> 0"),
    (dict(refract_time=-1.), "refract_time", ">= 0"), (dict(refract_time=[0., -1e-3, 1.]), "refract_time", ">= 0"),
]

#: what ngc-learn's AdExCell simulates and so must be accepted (degenerate or extreme, but finite)
_ACCEPTED = [dict(thr=-60.), dict(thr=-55.), dict(v_sharpness=0., thr=-56.), dict(v_reset=5.), dict(v_reset=10.),
             dict(v0=5.1), dict(tau_w=1e10), dict(tau_m=2e9), dict(resist_m=0.), dict(a=-2., b=-10.),
             dict(v_sharpness=1e-4), dict(tau_m=1e-9), dict(thr=1e12), dict(a=1e12)]


@pytest.mark.parametrize("override", _ACCEPTED, ids=[str(o) for o in _ACCEPTED])
def test_what_ngclearn_simulates_is_accepted(override):
    _construct(n_units=3, **{**_VALID, **override})


def _construct(**kwargs):
    name = f"test_properties_bad_{next(_names)}"
    try:
        with Context(name):
            AdExCell("z", **kwargs)
    finally:
        contextManager.remove_context(name)


@pytest.mark.parametrize("arg", sorted(_VALID))
@pytest.mark.parametrize("what,value", _BAD_ANY, ids=[b[0] for b in _BAD_ANY])
def test_invalid_value_raises(arg, what, value):
    with pytest.raises(ValueError, match=arg) as info:
        _construct(n_units=3, **{**_VALID, arg: value})
    message = str(info.value)
    assert message.startswith(arg) or f"{arg} " in message
    assert "must" in message or "broadcast" in message  # states what is allowed


@pytest.mark.parametrize("override,arg,fragment", _BAD_RANGE, ids=[str(b[0]) for b in _BAD_RANGE])
def test_out_of_range_raises(override, arg, fragment):
    with pytest.raises(ValueError) as info:
        _construct(n_units=3, **{**_VALID, **override})
    message = str(info.value)
    assert message.startswith(arg), message
    assert fragment in message, message


@pytest.mark.parametrize("arg", ["n_units", "batch_size"])
@pytest.mark.parametrize("value", [0, -1, 2.0, 3.5, True, False, "3", None, [3], np.nan])
def test_invalid_counts_raise(arg, value):
    kwargs = dict(n_units=3, batch_size=1)
    kwargs[arg] = value
    with pytest.raises(ValueError, match=f"{arg} must be a positive integer"):
        _construct(**kwargs)


@pytest.mark.parametrize("value", ["rk45", "", "rk3", None, 2, "exact"])
def test_unknown_integrator_raises(value):
    with pytest.raises(ValueError, match="integration_type must be one of"):
        _construct(n_units=3, integration_type=value)


@pytest.mark.parametrize("value", ["Euler", "RK2", "rk1", "Precise", "midpoint", "Heun", "rk2_heun", "RALSTON", "rk2_ralston", "RK4"])
def test_integrator_spellings_accepted(value):
    _construct(n_units=3, integration_type=value)


@pytest.mark.parametrize("what,value", [("a list of strings", ["15", "15", "15"]),
                                        ("a bool", True), ("a numpy string array", np.array(["15"]))])
def test_non_numeric_elements_raise(what, value):
    with pytest.raises(ValueError, match="tau_m"):
        _construct(n_units=3, tau_m=value)


def test_valid_mixture_accepted():
    _construct(n_units=3, batch_size=2, v_sharpness=[0., 1e-3, 10.], thr=[-55., 5., 60.], v0=[-55., 5., 60.],
               tau_m=[[0.1, 15., 1000.]] * 2, refract_time=[[0.], [10.]])


# ----------------------------------------------------------------------------
# 4. input current of the wrong shape
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def euler_cell():
    return _build_cell({}, "euler", watch=False)


@pytest.mark.parametrize("j_shape", [(SHAPE[1], 1), (SHAPE[0] + 1, SHAPE[1]), (SHAPE[1] + 1,), (1, 1, SHAPE[1]),
                                     (SHAPE[1], SHAPE[0])])
def test_wrong_current_shape_cell(j_shape, euler_cell):
    cell, advance, reset = euler_cell
    reset.run()
    cell.j.set(jnp.ones(j_shape, dtype=F32) * 30.)
    with pytest.raises(ValueError, match=r"\bj\b.*" + r"\(2, 3\)") as info:
        advance.run(t=0.1, dt=0.1)
    assert str(tuple(j_shape)) in str(info.value)


@pytest.mark.parametrize("j_shape", [(SHAPE[1], 1), (SHAPE[0] + 1, SHAPE[1])])
def test_wrong_current_shape_pure(j_shape):
    values = _validated({k: np.full(SHAPE, v) for k, v in _VALID.items()})
    c = numerics.coefficients(_adex_params(values))
    z = jnp.zeros(SHAPE)
    state = numerics.AdExState(z - 70., z, z, z, z, z)
    with pytest.raises(ValueError, match=r"\bj\b"):
        numerics.advance(state, jnp.ones(j_shape), 0.1, 0.1, c, "euler", False)


@pytest.mark.parametrize("j_shape", [(), (SHAPE[1],), (1, SHAPE[1]), (SHAPE[0], 1), SHAPE])
def test_broadcastable_current_shapes_accepted(j_shape, euler_cell):
    cell, advance, reset = euler_cell
    reset.run()
    cell.j.set(jnp.ones(j_shape, dtype=F32) * 30.)
    advance.run(t=0.1, dt=0.1)
    assert cell.v.get().shape == SHAPE


# ----------------------------------------------------------------------------
# 5. a NaN current poisons only its own neuron
# ----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("method", numerics.METHODS)
@settings(max_examples=_n(10), **SETTINGS)
@given(pop=populations(), victim=st.integers(0, N_NEURONS - 1), nan_from=st.integers(0, N_STEPS - 1))
def test_nan_current_isolated_pure(method, pop, victim, nan_from):
    p, dt, j = pop
    values = _validated(p)
    b, u = np.unravel_index(victim, SHAPE)
    j_nan = j.copy()
    j_nan[nan_from:, b, u] = np.nan
    clean = _run_pure(values, dt, j, method)
    poisoned = _run_pure(values, dt, j_nan, method)
    others = np.ones(SHAPE, dtype=bool)
    others[b, u] = False
    for name in clean:
        np.testing.assert_array_equal(poisoned[name][:, others], clean[name][:, others], err_msg=name)
        np.testing.assert_array_equal(poisoned[name][:nan_from], clean[name][:nan_from], err_msg=name)
    # documented: the neuron fed NaN goes NaN (once it is no longer held refractory)
    assert np.isnan(poisoned["v"][-1, b, u]) or poisoned["ref_left"][-1, b, u] > 0.
    # after the NaN a neuron spikes only at the start of a step that it began above the spike potential
    # (held at a v_reset above it, or a v0 above it): that spike does not depend on the input
    sharp, thr, v_t = (float(p[k][b, u]) for k in ("v_sharpness", "thr", "intrinsic_mem_thr"))
    v_spike = thr if sharp > 0 else min(thr, v_t)
    v_start = np.concatenate([[p["v0"][b, u]], poisoned["v"][:-1, b, u]])[nan_from:]
    spiked = poisoned["s"][nan_from:, b, u] > 0
    assert np.all(v_start[spiked] > np.float32(v_spike)), v_start[spiked]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["euler"] + (["midpoint", "rk4", "precise"] if LONG else []))
def test_nan_current_isolated_cell(method):
    kwargs = dict(v_sharpness=[[2., 0., 0.5], [2., 1e-3, 10.]], refract_time=[0., 1., 2.])
    results = []
    for poison in (False, True):
        cell, advance, reset = _build_cell(kwargs, method)
        reset.run()
        j = np.tile(np.array([200., 300., 400.], dtype=F32), (2, 1))
        if poison:
            j[1, 1] = np.nan
        cell.j.set(jnp.asarray(j))
        rows = jnp.asarray(advance.pack_rows(N_STEPS, t=lambda i: (i + 1) * 0.1, dt=0.1))
        _, watched = advance.scan(rows)
        results.append([np.asarray(x) for x in watched])
    for name, clean, poisoned in zip(_WATCHED, *results):
        np.testing.assert_array_equal(poisoned[:, 0, :], clean[:, 0, :], err_msg=name)
        np.testing.assert_array_equal(poisoned[:, 1, [0, 2]], clean[:, 1, [0, 2]], err_msg=name)
    assert np.isnan(results[1][0][-1, 1, 1])
    assert results[0][2].sum() > 0


# ----------------------------------------------------------------------------
# 6. determinism: two runs, two builds, step-by-step run vs scan
# ----------------------------------------------------------------------------
_DET_KW = dict(v_sharpness=[[2., 0., 0.5], [1e-3, 2., 10.]], refract_time=[[0., 1., 2.], [0.5, 0., 5.]],
               tau_m=[[15., 0.5, 200.], [15., 15., 15.]], a=[0.1, 4., -1.], b=[0.75, 60., 0.])
_DET_J = np.array([[30., 300., 80.], [1e4, 50., 25.]], dtype=F32)


def _scan_once(advance, reset, cell, n_steps, dt):
    reset.run()
    cell.j.set(jnp.asarray(_DET_J))
    rows = jnp.asarray(advance.pack_rows(n_steps, t=lambda i: (i + 1) * dt, dt=dt))
    _, watched = advance.scan(rows)
    return [np.asarray(x) for x in watched]


def _loop_once(advance, reset, cell, n_steps, dt):
    reset.run()
    cell.j.set(jnp.asarray(_DET_J))
    rows = advance.pack_rows(n_steps, t=lambda i: (i + 1) * dt, dt=dt)
    out = []
    for row in jnp.asarray(rows):  # the same float32 keyword rows as the scan
        _, watched = advance.run(keywords=row)
        out.append([np.asarray(x) for x in watched])
    return [np.stack(x) for x in zip(*out)]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["euler", "precise"] + (["midpoint", "rk4"] if LONG else []))
def test_determinism(method):
    n_steps, dt = 150, 0.1
    cell, advance, reset = _build_cell(_DET_KW, method)
    first = _scan_once(advance, reset, cell, n_steps, dt)
    second = _scan_once(advance, reset, cell, n_steps, dt)
    looped = _loop_once(advance, reset, cell, n_steps, dt)
    assert first[2].sum() > 0
    for name, a, b, c in zip(_WATCHED, first, second, looped):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: two scans differ")
        np.testing.assert_array_equal(a, c, err_msg=f"{name}: step-by-step run differs from scan")
    if method == "euler":  # a second, identically built model
        cell2, advance2, reset2 = _build_cell(_DET_KW, method)
        other = _scan_once(advance2, reset2, cell2, n_steps, dt)
        for name, a, b in zip(_WATCHED, first, other):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: two identical models differ")


def test_determinism_pure_repeated():
    """The jitted pure path on the same inputs twice, for every integrator."""
    p = {k: np.full(SHAPE, v, dtype=np.float64) for k, v in _VALID.items()}
    p["refract_time"] = np.full(SHAPE, 1.)
    values = _validated(p)
    j = np.broadcast_to(_DET_J, (N_STEPS,) + SHAPE).astype(F32)
    for method in numerics.METHODS:
        a = _run_pure(values, 0.1, j, method)
        b = _run_pure(values, 0.1, j, method)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{method} {name}")


# ----------------------------------------------------------------------------
# 7. large populations agree with small ones (no path depends on the population size)
# ----------------------------------------------------------------------------
def _large_population_case(method, all_active):
    """Six diverse neurons, alone and tiled into a population of over 4096,
    with a few or all of the copies driven: the step must not depend on the
    population's size or on how many neurons spike at once."""
    small = dict(_DET_KW_PURE)
    small_shape = SHAPE
    n_big = 2 * (4096 // 2 // N_NEURONS + 1) * N_NEURONS
    big_shape = (2, n_big // 2)
    tile = lambda x: np.tile(np.broadcast_to(np.asarray(x, np.float64), small_shape).reshape(-1),
                             n_big // N_NEURONS).reshape(big_shape)
    _, _, v_small = adex_params.validate(small_shape[1], small_shape[0], **small)
    _, _, v_big = adex_params.validate(big_shape[1], big_shape[0], **{k: tile(v) for k, v in small.items()})
    j_small = np.broadcast_to(_DET_J, (N_STEPS,) + SHAPE).astype(F32)
    j_big = np.tile(j_small.reshape(N_STEPS, -1), (1, n_big // N_NEURONS))
    n_active = n_big if all_active else 20 * N_NEURONS  # a few spiking neurons, or all
    j_big[:, n_active:] = 0.
    j_big = j_big.reshape((N_STEPS,) + big_shape)
    return _run_pure(v_small, 0.1, j_small, method), _run_pure(v_big, 0.1, j_big, method), v_big, n_active


_DET_KW_PURE = dict(_VALID, v_sharpness=[[2., 0., 0.5], [1e-3, 2., 10.]], refract_time=[[0., 1., 2.], [0.5, 0., 5.]],
                    tau_m=[[15., 0.5, 200.], [15., 15., 15.]], a=[0.1, 4., -1.], b=[0.75, 60., 0.],
                    thr=[[5., -55., 5.], [5., 5., 5.]], v0=[[-70., -56., -70.], [-70., -70., -70.]])


@pytest.mark.slow
@pytest.mark.parametrize("all_active", [False, True], ids=["few-spiking", "all-spiking"])
@pytest.mark.parametrize("method", ["precise"] + (["midpoint", "rk4"] if LONG else []))
def test_large_population_matches_small(method, all_active):
    small, big, values, n_active = _large_population_case(method, all_active)
    check_trajectory(big, values, 0.1, context=f"[{method}, large population]")
    assert small["s"].sum() > 10
    flat = lambda x: x.reshape(x.shape[0], -1)
    for name in small:
        ref = np.tile(flat(small[name]), (1, n_active // N_NEURONS))
        if name == "s":
            np.testing.assert_array_equal(flat(big[name])[:, :n_active], ref, err_msg=name)
        else:  # XLA's code for other array sizes may round differently (rk4 differs by 1 ulp)
            np.testing.assert_allclose(flat(big[name])[:, :n_active], ref, rtol=1e-5, atol=1e-5, err_msg=name)
