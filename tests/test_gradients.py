"""Finite gradients through one step of every integrator (issue 13, point 6).

``jax.grad`` of a scalar function of one step's outputs (v, w, t_spike) with
respect to the input current j and the state's v and w must be finite for
every finite state and input: steps spent refractory (the flight's duration
is 0 and v does not move), v at or above the spike potential, v that does not
move, huge, tiny and zero currents (up to the largest float32), the
integrate-and-fire limit (v_sharpness = 0) mixed with exponential neurons,
and extreme valid parameters. Where the step is smooth (no spike, no
refractoriness), the gradients of "precise" and "rk4" must match central
finite differences of the step in float64.

The sweep is a seeded random grid: one population of ``N`` neurons per draw
(a parameter set and a state per neuron), its gradient jitted once per
(integrator, refractory, population kind) with the step size, the state and
the weights of the outputs as arguments (compilation dominates the cost).
"""
import os

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from ngc_adex import numerics, preset_kwargs
from ngc_adex import params as adex_params

LONG = os.environ.get("NGC_ADEX_LONG_TESTS", "").strip() not in ("", "0")
N = 8192
DTS = (1e-3, 0.1, 1.)
#: (refractory, all_exp) populations, i.e. the step's static branches. With refractoriness, neurons with
#: no refractory time left (or refract_time = 0) take the same arithmetic as without; all four kinds, and
#: three draws each, with NGC_ADEX_LONG_TESTS=1
KINDS = [(True, False), (True, True)] + ([(False, False), (False, True)] if LONG else [])
REPEATS = 3 if LONG else 1
F32_MAX = float(np.finfo(np.float32).max)


def _pick(rng, n, fixed, lo, hi, log=False):
    """n values: half from ``fixed`` (the extremes), half uniform (log-uniform) in [lo, hi]."""
    a = rng.choice(np.asarray(fixed, dtype=np.float64), n)
    b = 10. ** rng.uniform(np.log10(lo), np.log10(hi), n) if log else rng.uniform(lo, hi, n)
    return np.where(rng.random(n) < 0.5, a, b)


def _population(seed, dt, all_exp, refractory, n=N):
    """(parameters as float64 (1, n) arrays, validated; v, w, ref_left, j as float32 (1, n) arrays)."""
    rng = np.random.default_rng(seed)
    p = dict(tau_m=_pick(rng, n, [0.01, 1000., 20.], 0.01, 1000., True),
             resist_m=_pick(rng, n, [1., 0.01], 0.01, 1., True),
             tau_w=_pick(rng, n, [0.01, 1e4, 30.], 0.01, 1e4, True),
             v_sharpness=_pick(rng, n, [0., 0., 1e-3, 10., 2.], 1e-3, 10., True),
             v_rest=_pick(rng, n, [-90., -40., -70.], -90., -40.),
             a=_pick(rng, n, [0., -10., 1000., 2.], -10., 100.),
             b=_pick(rng, n, [0., -50., 500., 60.], -50., 500.),
             refract_time=_pick(rng, n, [0., 10., 1e-3, 2.], 0., 10.))
    if all_exp:
        p["v_sharpness"] = np.where(p["v_sharpness"] > 0., p["v_sharpness"], 2.)
    v_t = _pick(rng, n, [-70., -30., -50.], -70., -30.)
    thr = v_t + _pick(rng, n, [1e-4, 100., 50.], 1e-4, 100., True)
    thr = np.where((p["v_sharpness"] == 0.) & (rng.random(n) < 0.5), v_t, thr)  # thr = V_T is valid there
    zero = rng.random(n) < 0.05  # the spike potential at 0 mV (thr = 0 as in the Naud presets)
    thr = np.where(zero & (p["v_sharpness"] > 0.), 0., thr)
    v_t = np.where(zero & (p["v_sharpness"] == 0.), 0., v_t)
    thr = np.maximum(thr, v_t)
    p["intrinsic_mem_thr"], p["thr"] = v_t, thr
    v_spike = np.where(p["v_sharpness"] > 0., thr, v_t)
    p["v_reset"] = v_spike - _pick(rng, n, [1e-3, 60., 10.], 1e-3, 60., True)
    if not refractory:
        p["refract_time"] = np.zeros(n)

    # states: v at, just below, above and far from the spike potential, at v_reset, V_T, at rest
    v = v_spike - _pick(rng, n, [0., 0., 1e-6, 1e-3, 1., 100., -1e-3, -1., -1e3], 0., 100.)
    v = np.where(rng.random(n) < 0.1, p["v_reset"], v)
    v = np.where(rng.random(n) < 0.05, v_t, v)
    v = np.where(rng.random(n) < 0.05, p["v_rest"], v)
    v = np.where(rng.random(n) < 0.03, rng.choice([-1e9, 1e9, -1e6], n), v)
    v = np.where(zero, rng.choice([0., -1e-30, 1e-30, -1e-6], n), v)
    w = _pick(rng, n, [0., 0., -1e3, 1e3, 1e9, -1e9, 1e-6], -1e3, 1e3)
    # refractory time left: none, a sliver, part of the step, all of it, beyond it
    ref = _pick(rng, n, [1e-6, dt / 2, dt, 1., 2. * dt, dt * (1. - 1e-6)], 0., 10.)
    ref = np.where(rng.random(n) < 0.5, 0., np.minimum(ref, p["refract_time"]))
    j = _pick(rng, n, [0., 0., -1e4, 1e5, 1e9, -1e9, 1e-6, 1e30, -1e30, 500., F32_MAX, -F32_MAX], -1e4, 1e5)
    # v that does not move: at rest with no input and no adaptation current (not at all without the
    # exponential term, by less than its float32 resolution where that term is small)
    still = rng.random(n) < 0.1
    v, w, j = np.where(still, p["v_rest"], v), np.where(still, 0., w), np.where(still, 0., j)
    if not refractory:
        ref = np.zeros(n)
    if refractory and all_exp:  # neuron 0: the reproducer (see test_gradients_finite)
        kw = preset_kwargs("tonic", t_ref=2.)
        for k in p:
            p[k][0] = kw[k]
        v[0], w[0], ref[0], j[0] = kw["v_reset"], 20., 1., 500.

    _, _, values = adex_params.validate(n, 1, **p, v0=p["v_reset"], w0=0.)  # valid by construction
    f32 = lambda x: jnp.asarray(np.asarray(x).reshape(1, n), jnp.float32)
    return values, (f32(v), f32(w), f32(ref), f32(j))


def _grad_fn(method, refractory, c):
    """jax.grad, with respect to (j, v, w), of a weighted sum of one step's v, w and t_spike."""
    def loss(j, v, w, ref_left, dt, weights):
        z = jnp.zeros_like(v)
        out = numerics.advance(numerics.AdExState(v, w, ref_left, z, z - 5., z - 5.), j, 1., dt, c, method,
                               refractory)
        return jnp.sum(weights[0] * out.v + weights[1] * out.w + weights[2] * out.t_spike)
    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


@pytest.mark.slow
@pytest.mark.parametrize("refractory,all_exp", KINDS, ids=[("refractory" if r else "plain")
                                                            + ("-all_exp" if e else "-with_if") for r, e in KINDS])
@pytest.mark.parametrize("method", numerics.METHODS)
def test_gradients_finite(method, refractory, all_exp):
    for rep in range(REPEATS):
        seed = 100 * rep + numerics.METHODS.index(method) * 4 + 2 * refractory + all_exp
        values = _population(seed, DTS[0], all_exp, refractory)[0]
        c = numerics.coefficients(numerics.AdExParams(**{k: values[k] for k in numerics.AdExParams._fields}))
        grad = _grad_fn(method, refractory, c)
        weights = jnp.asarray(np.random.default_rng(seed).uniform(0.5, 2., 3), jnp.float32)
        for dt in DTS:  # the same parameters and states; the refractory time left drawn relative to dt
            _, state = _population(seed, dt, all_exp, refractory)
            v, w, ref, j = state
            _check_finite(grad(j, v, w, ref, jnp.float32(dt), weights), method, dt, values, state)
            if refractory and all_exp:
                # The reproducer, neuron 0: tonic preset with t_ref = 2 ms and 1 ms of refractory
                # time left, jax.grad of w.sum() with respect to j (NaN for midpoint and rk4 before). The
                # step is spent clamped: w relaxes in closed form (v is held), independent of j.
                dw_dj = grad(j, v, w, ref, jnp.float32(dt), jnp.asarray([0., 1., 0.], jnp.float32))[0]
                _check_finite((dw_dj,), method, dt, values, state)
                assert float(dw_dj[0, 0]) == 0., (method, dt, float(dw_dj[0, 0]))


def _check_finite(grads, method, dt, values, state):
    for name, g in zip("jvw", grads):
        bad = ~np.isfinite(np.asarray(g)).ravel()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            lane = {k: float(np.asarray(values[k]).ravel()[i]) for k in numerics.AdExParams._fields}
            state_i = {k: float(np.asarray(x).ravel()[i]) for k, x in zip(("v", "w", "ref_left", "j"), state)}
            raise AssertionError(f"{method}, dt={dt}: d/d{name} non-finite in {bad.sum()} of {bad.size} neurons, "
                                 f"e.g. {lane}, {state_i}")


# One step in float64 (jax.enable_x64 as a context: the step is traced and compiled inside it):
# jax.grad of v + 10 w with respect to (j, v, w) against central differences, where the step is
# smooth: far below threshold, near it (the exponential term matters) and on the upswing short of
# thr (where "precise" sums v from rho and w carries the psi transform), with and without an
# adaptation current; and, as a check of the crossing's derivatives, steps that cross thr well inside
# (the reset and the rest of the step then depend smoothly on the crossing time).
FD_SMOOTH = [(300., -65., 0.), (500., -52., 40.), (800., -46., 0.), (300., -44., 100.)]  # (j, v, w)
FD_CROSSING = [(500., -36., 20.), (500., -32., 20.)]
FD_EPS = (1e-3, 1e-5, 1e-3)
W_WEIGHT = 10.  # v + W_WEIGHT w: both of the step's outputs at comparable weight


@pytest.mark.slow
@pytest.mark.parametrize("method", ["precise", "rk4"])
def test_gradients_match_finite_differences_float64(method):
    kw = preset_kwargs("tonic")
    with jax.enable_x64(True):
        c = numerics.coefficients(numerics.AdExParams(**{k: kw[k] for k in numerics.AdExParams._fields}),
                                  jnp.float64)

        def step(x):
            j, v, w = x
            one = jnp.ones((1, 1), jnp.float64)
            state = numerics.AdExState(v * one, w * one, 0. * one, 0. * one, 0. * one, 0. * one)
            out = numerics.advance(state, j * one, 0.1, 0.1, c, method, False)
            return out.v.sum() + W_WEIGHT * out.w.sum(), out.s.sum()

        f = jax.jit(step)
        grad = jax.jit(jax.grad(lambda x: step(x)[0]))
        for case in FD_SMOOTH + FD_CROSSING:
            x = jnp.asarray(case, jnp.float64)
            assert f(x)[0].dtype == jnp.float64
            assert float(f(x)[1]) == (case in FD_CROSSING)  # a spike exactly in the crossing cases
            fd = []
            for k, eps in enumerate(FD_EPS):
                e = jnp.zeros(3, jnp.float64).at[k].set(eps)
                fd.append((float(f(x + e)[0]) - float(f(x - e)[0])) / (2. * eps))
            g = np.asarray(grad(x))
            # the step is an analytic function of (j, v, w) there: differences of its float64 values
            # (rounding ~1e-16/eps) agree with the gradient to ~1e-8 relative
            np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9,
                                       err_msg=f"{method}, (j, v, w) = {case}: d(v + 10 w)/d(j, v, w)")
            assert g[0] > 0.  # the input raises v and w within the step
