r"""Synaptic receptors inside the cell: kinetics, events, and what they add to the membrane.

Receptor k has a conductance (or current) ``g_k`` with linear kinetics and
acts on the membrane as::

    tau_m dv/dt = ... - resist_m sum_cond g_k (v - e_rev_k) + resist_m sum_curr g_k

* ``"exp"``:   dg/dt = -g/tau_decay; an event of weight q adds q to g
  (NEST ``aeif_cond_exp`` / ``aeif_psc_exp``).
* ``"alpha"``: dg/dt = h - g/tau_decay, dh/dt = -h/tau_decay; an event of
  weight q adds ``q e/tau_decay`` to h: g = q (t/tau) e^(1 - t/tau), peak q at
  t = tau_decay (NEST ``aeif_cond_alpha`` / ``aeif_psc_alpha``).
* ``"beta"``:  dg/dt = h - g/tau_decay, dh/dt = -h/tau_rise (tau_rise <
  tau_decay); an event adds ``q g0`` to h, g0 normalizing the peak to q
  (NEST ``aeif_cond_beta_multisynapse``).

Conductances in nS (currents in pA) times ``resist_m`` (GOhm) give mV. Between
events the kinetics are solved in closed form: a receptor's g over a span is
a sum of decaying exponentials (times t for "alpha"), whose values, Taylor
coefficients and derivatives the integrators read. The membrane sees the
receptors through two sums, both linear in the receptor states::

    G(t) = resist_m sum_cond g_k(t)                              (dimensionless)
    J(t) = resist_m (sum_cond g_k(t) e_rev_k + sum_curr g_k(t))  (mV)

so that ``tau_m dv/dt = drive + J(t) - (1 + G(t)) v + ...``.
"""
import math
from typing import NamedTuple, Tuple

import numpy as np
import jax.numpy as jnp

from .model import STATE_BOUND
from .ops import _static

KINDS = ("exp", "alpha", "beta")


class Receptor(NamedTuple):
    """Coefficients of one receptor (``kind`` and ``conductance`` are static)."""
    kind: str                 # "exp", "alpha" or "beta"
    conductance: bool         # False: a current (weights in pA)
    lam_d: jnp.ndarray        # 1/tau_decay (1/ms)
    lam_r: jnp.ndarray        # 1/tau_rise ("beta"); 1/tau_decay ("alpha"); 0 ("exp")
    inv_gap: jnp.ndarray      # 1/(lam_r - lam_d) ("beta"), else 0
    jump: jnp.ndarray         # what an event of weight 1 adds to h ("alpha", "beta") or to g ("exp")
    e_rev: jnp.ndarray        # reversal potential (mV; conductances)
    resist: jnp.ndarray       # resist_m
    resist_e: jnp.ndarray     # resist_m e_rev (mV; conductances), resist_m (currents)


class ReceptorState(NamedTuple):
    """Receptor states, arrays shaped ``(n_receptors, batch_size, n_units)``: ``g``
    (nS, or pA for currents) and its drive ``h`` (nS/ms; 0 for "exp")."""
    g: jnp.ndarray
    h: jnp.ndarray


def beta_peak_norm(tau_rise, tau_decay):
    """What an event of weight 1 adds to h so that a "beta" g (tau_rise < tau_decay) peaks at 1:
    NEST's normalization, ``(1/tau_rise - 1/tau_decay) / (e^(-t_p/tau_decay) - e^(-t_p/tau_rise))``
    at the peak time ``t_p = ln(tau_decay/tau_rise) / (1/tau_rise - 1/tau_decay)``."""
    lam_r, lam_d = 1. / np.asarray(tau_rise, np.float64), 1. / np.asarray(tau_decay, np.float64)
    gap = lam_r - lam_d
    t_peak = np.log(lam_r / lam_d) / gap
    return gap / (np.exp(-lam_d * t_peak) - np.exp(-lam_r * t_peak))


class ReceptorParams(NamedTuple):
    """One receptor's parameters: ``kind`` (one of :data:`KINDS`), ``tau_decay`` (ms),
    ``tau_rise`` (ms; "beta" only) and ``e_rev`` (mV; None for a current receptor)."""
    kind: str
    tau_decay: object
    tau_rise: object = None
    e_rev: object = None


def receptor_coefficients(params: ReceptorParams, resist_m, dtype) -> Receptor:
    """The coefficients of one receptor from validated parameters (ms, mV, GOhm; ``resist_m`` may be traced)."""
    kind, tau_decay, tau_rise, e_rev = params
    conductance = e_rev is not None
    if kind not in KINDS:
        raise ValueError(f"receptor kind must be one of {KINDS}; got {kind!r}")
    f64 = lambda x: np.asarray(x, np.float64)
    tau_decay = f64(tau_decay)
    resist_m = resist_m if _static(resist_m) is None else f64(resist_m)  # traced: kept (differentiable)
    lam_d = 1. / tau_decay
    zero = np.zeros_like(lam_d)
    if kind == "exp":
        lam_r, inv_gap, jump = zero, zero, np.ones_like(lam_d)
    elif kind == "alpha":
        lam_r, inv_gap, jump = lam_d, zero, math.e * lam_d
    else:
        lam_r = 1. / f64(tau_rise)
        same = np.isclose(lam_r, lam_d, rtol=1e-12, atol=0.)
        if np.any(same):
            raise ValueError("a \"beta\" receptor needs tau_rise < tau_decay (use \"alpha\" for equal time constants)")
        inv_gap, jump = 1. / (lam_r - lam_d), beta_peak_norm(f64(tau_rise), tau_decay)
    e_rev = f64(e_rev) if conductance else zero
    arr = lambda x: jnp.asarray(x, dtype=dtype)
    return Receptor(kind, conductance, arr(lam_d), arr(lam_r), arr(inv_gap), arr(jump), arr(e_rev), arr(resist_m),
                    arr(resist_m * e_rev if conductance else resist_m))


def deliver(state: ReceptorState, weights, receptors: Tuple[Receptor, ...]) -> ReceptorState:
    """The state after events of the given ``weights`` (``(n_receptors, ...)``: the summed
    weights of the step's presynaptic spikes per receptor)."""
    g, h = [], []
    for k, r in enumerate(receptors):
        if r.kind == "exp":
            g.append(state.g[k] + r.jump * weights[k])
            h.append(state.h[k])
        else:
            g.append(state.g[k])
            h.append(state.h[k] + r.jump * weights[k])
    return ReceptorState(jnp.stack(g), jnp.stack(h))


def _decays(r: Receptor, s):
    """(e^(-lam_d s), e^(-lam_r s)) (the second None for "exp")."""
    e_d = jnp.exp(-r.lam_d * s)
    return e_d, (None if r.kind == "exp" else (e_d if r.kind == "alpha" else jnp.exp(-r.lam_r * s)))


def _g_h_at(r: Receptor, g0, h0, s):
    """(g, h) of one receptor ``s`` ms after (g0, h0)."""
    e_d, e_r = _decays(r, s)
    if r.kind == "exp":
        return g0 * e_d, h0
    if r.kind == "alpha":
        return (g0 + h0 * s) * e_d, h0 * e_d
    return g0 * e_d + h0 * r.inv_gap * (e_d - e_r), h0 * e_r


def evolve(state: ReceptorState, s, receptors) -> ReceptorState:
    """The state ``s`` ms later (closed form; ``s`` a scalar or per neuron)."""
    out = [_g_h_at(r, state.g[k], state.h[k], s) for k, r in enumerate(receptors)]
    return ReceptorState(jnp.stack([o[0] for o in out]), jnp.stack([o[1] for o in out]))


def totals(g, receptors):
    """(G, J) from the receptors' g (a sequence, one array per receptor)."""
    G, J = 0., 0.
    for gk, r in zip(g, receptors):
        if r.conductance:
            G = G + r.resist * gk
        J = J + r.resist_e * gk
    return G, J


def totals_at(state: ReceptorState, s, receptors):
    """(G, J) ``s`` ms after ``state``."""
    return totals([_g_h_at(r, state.g[k], state.h[k], s)[0] for k, r in enumerate(receptors)], receptors)


def _g_integral(r: Receptor, g0, h0, s):
    """The integral of one receptor's g over [0, s] from (g0, h0)."""
    e_d, e_r = _decays(r, s)
    i_d = (1. - e_d) / r.lam_d  # the integral of e^(-lam_d t)
    if r.kind == "exp":
        return g0 * i_d
    if r.kind == "alpha":  # the integral of t e^(-lam t): (1 - e^(-lam s) (1 + lam s))/lam^2
        return g0 * i_d + h0 * (i_d - s * e_d) / r.lam_d
    return g0 * i_d + h0 * r.inv_gap * (i_d - (1. - e_r) / r.lam_r)


def integrals(state: ReceptorState, s, receptors):
    """The integrals of G and J over the ``s`` ms after ``state`` (ms, mV ms)."""
    return totals([_g_integral(r, state.g[k], state.h[k], s) for k, r in enumerate(receptors)], receptors)


def taylor_totals(state: ReceptorState, span, order, receptors):
    """Taylor coefficients of G and J over ``span`` ms from ``state``: lists ``G_n``,
    ``J_n`` (n = 0..order) with ``G(theta span) = sum_n G_n theta^n``."""
    coeffs = []
    for k, r in enumerate(receptors):
        g0, h0 = state.g[k], state.h[k]
        x_d = -r.lam_d * span
        p_d = [1.]  # (-lam_d span)^n / n!
        for n in range(1, order + 1):
            p_d.append(p_d[-1] * x_d / n)
        if r.kind == "exp":
            series = [g0 * p for p in p_d]
        elif r.kind == "alpha":
            # (g0 + h0 t) e^(-lam t): the t-term's coefficient n is span (-lam span)^(n-1)/(n-1)!
            hs = h0 * span
            series = [g0] + [g0 * p_d[n] + hs * p_d[n - 1] for n in range(1, order + 1)]
        else:
            x_r = -r.lam_r * span
            p_r = [1.]
            for n in range(1, order + 1):
                p_r.append(p_r[-1] * x_r / n)
            hg = h0 * r.inv_gap
            series = [g0] + [g0 * p_d[n] + hg * (p_d[n] - p_r[n]) for n in range(1, order + 1)]
        coeffs.append(series)
    out = [totals([c[n] for c in coeffs], receptors) for n in range(order + 1)]
    return [o[0] for o in out], [o[1] for o in out]


def euler_step(state: ReceptorState, weights, dt, receptors) -> ReceptorState:
    """Forward Euler over dt, then the step's events: ngc-learn's synapse update
    (``ExponentialSynapse``: g <- g - dt g/tau_decay + q), within the state box (Euler
    diverges for time constants below dt/2, as ngc-learn's does, but stays finite)."""
    box = lambda x: jnp.clip(x, -STATE_BOUND, STATE_BOUND)
    g, h = [], []
    for k, r in enumerate(receptors):
        gk, hk = state.g[k], state.h[k]
        if r.kind == "exp":
            g.append(box(gk + (-gk * r.lam_d) * dt + r.jump * weights[k]))
            h.append(hk)
        else:
            h_new = box(hk + (-hk * r.lam_r) * dt + r.jump * weights[k])
            g.append(box(gk + (h_new - gk * r.lam_d) * dt))
            h.append(h_new)
    return ReceptorState(jnp.stack(g), jnp.stack(h))


def synaptic_current(g, v, receptors):
    """The receptors' current into the membrane at potential v (pA): the sum of
    -g_k (v - e_rev_k) over conductances and g_k over currents (ngc-learn's synapses' ``i_syn``)."""
    total = 0.
    for gk, r in zip(g, receptors):
        total = total + (-gk * (v - r.e_rev) if r.conductance else gk)
    return total
