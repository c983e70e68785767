"""Explicit Runge-Kutta integrators of the coupled (v, w) system: "midpoint",
"heun", "ralston" (two stages, order 2) and "rk4" (four stages, order 4).

Each stage evaluates :func:`~ngc_adex.numerics.model.vw_field`, clamped so that
any stage value gives a finite field, with the receptors' sums at the stage's time
(their kinetics solved in closed form). A crossing of the spike potential is
located by linear interpolation between the ends of the step; for "rk4", where
v is smooth up to the spike potential (no exponential term, or
thr <= intrinsic_mem_thr), on RK4's cubic continuous extension instead.
"""
from functools import partial

import jax.numpy as jnp

from . import receptors
from .model import STATE_BOUND, Flight, clamp_w, vw_field
from .ops import maybe_any, safe_ratio, unit_ratio

#: the order of each integrator (its global error is O(dt^order); tests/test_numerics.py measures it)
ORDER = {"midpoint": 2, "heun": 2, "ralston": 2, "rk4": 4}


def _axpy(x, h, k):
    return tuple(xi + h * ki for xi, ki in zip(x, k))


def step_midpoint(f, x, h, k1=None):
    """Explicit midpoint (``f(x, a)``: the field at x and time a h into the step; ``k1``: f(x, 0)
    where already known). Returns (x1, stages)."""
    k1 = f(x, 0.) if k1 is None else k1
    k2 = f(_axpy(x, 0.5 * h, k1), 0.5)
    return _axpy(x, h, k2), (k1, k2)


def step_rk2(alpha, f, x, h, k1=None):
    """Explicit two-stage, second-order Runge-Kutta with its second stage at
    ``alpha h`` (1: Heun, 2/3: Ralston). Returns (x1, stages)."""
    k1 = f(x, 0.) if k1 is None else k1
    k2 = f(_axpy(x, alpha * h, k1), alpha)
    w2 = 0.5 / alpha
    return tuple(xi + h * ((1. - w2) * a + w2 * b) for xi, a, b in zip(x, k1, k2)), (k1, k2)


def step_rk4(f, x, h, k1=None):
    """Classical fourth-order Runge-Kutta (``k1``: f(x, 0) where already known).
    Returns (x1, stages)."""
    k1 = f(x, 0.) if k1 is None else k1
    k2 = f(_axpy(x, 0.5 * h, k1), 0.5)
    k3 = f(_axpy(x, 0.5 * h, k2), 0.5)
    k4 = f(_axpy(x, h, k3), 1.)
    x1 = tuple(xi + (h / 6.) * (a + 2. * b + 2. * cc + d) for xi, a, b, cc, d in zip(x, k1, k2, k3, k4))
    return x1, (k1, k2, k3, k4)


STEPPERS = {"midpoint": step_midpoint, "heun": partial(step_rk2, 1.), "ralston": partial(step_rk2, 2. / 3.),
            "rk4": step_rk4}


def rk4_dense(x0, ks, h, theta, i):
    """Component ``i`` of RK4's cubic continuous extension at fraction ``theta``
    of the step."""
    k1, k2, k3, k4 = (k[i] for k in ks)
    t2, t3 = theta * theta, theta * theta * theta
    b1 = theta - 1.5 * t2 + (2. / 3.) * t3
    b23 = t2 - (2. / 3.) * t3
    b4 = -0.5 * t2 + (2. / 3.) * t3
    return x0[i] + h * (b1 * k1 + b23 * (k2 + k3) + b4 * k4)


def locate_crossing(x0, ks, h, gap0, gap1, level, refinements):
    """Fraction of an RK4 step at which component 0 reaches ``level`` and
    component 1 there: the linear guess ``gap0/gap1`` (``gap0``: level minus
    the start, ``gap1``: the end minus the start), refined on the cubic dense
    output with the chord's slope (no derivative, one division)."""
    inv = safe_ratio(1., gap1)
    theta = jnp.clip(gap0 * inv, 0., 1.)
    for _ in range(refinements):
        theta = jnp.clip(theta - (rk4_dense(x0, ks, h, theta, 0) - level) * inv, 0., 1.)
    return theta, rk4_dense(x0, ks, h, theta, 1)


def flight(v, w, drive, h, ex0, c, method, syn=None) -> Flight:
    """Integrates (v, w) over h (ms) under ``drive`` with the method's tableau
    (``ex0``: the exponential factor at v; ``syn``: the receptors' state at the start,
    whose sums the field reads at every stage, exactly)."""
    x0 = (v, w)
    if syn is None:
        field = lambda x, a: vw_field(x[0], x[1], drive, c)
        k1 = vw_field(v, w, drive, c, ex0)
    else:
        field = lambda x, a: vw_field(x[0], x[1], drive, c, syn=receptors.totals_at(syn, a * h, c.receptors))
        k1 = vw_field(v, w, drive, c, ex0, syn=receptors.totals(syn.g, c.receptors))
    (v1, w1), ks = STEPPERS[method](field, x0, h, k1)
    crossed = v1 > c.v_spike
    # used where crossed, where v1 > v_spike >= v (v1 = v where the step is spent refractory)
    theta = unit_ratio(c.v_spike - v, v1 - v)
    w_cross = w + theta * (clamp_w(w1) - w)
    if method == "rk4" and maybe_any(c.smooth_crossing):
        # where v is smooth up to the spike potential, its cubic locates the crossing
        theta_if, w_if = locate_crossing(x0, ks, h, c.v_spike - v, v1 - v, c.v_spike, refinements=3)
        theta = jnp.where(c.smooth_crossing, theta_if, theta)
        w_cross = jnp.where(c.smooth_crossing, w_if, w_cross)
    return Flight(v=jnp.maximum(v1, -STATE_BOUND), w=clamp_w(w1), crossed=crossed, theta=theta, w_cross=w_cross)
