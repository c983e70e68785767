"""Spike, reset and refractoriness: what happens around a flight.

A neuron still refractory at the start of a step is held at v_reset for its
share of the step while w relaxes in closed form; a neuron that crosses the
spike potential is reset (v <- v_reset, w <- w + b) and, for every integrator
but "euler", integrated over the rest of the step after its refractory period.
"""
import jax.numpy as jnp

from . import receptors
from .model import STATE_BOUND
from .ops import blend, clamp, maybe_any, scaled


def clamped_share(ref_left, dt):
    """Refractory time served at the start of the step (ms)."""
    return jnp.clip(ref_left, 0., dt)


def held_v(v, r_a, c):
    """v_reset where some of the step is served clamped (``r_a > 0``), else v."""
    return jnp.where(r_a > 0., c.v_reset, v)


def relax_w(w, r, c):
    """w after r ms with v held at v_reset (closed form)."""
    return c.w_refract + (w - c.w_refract) * jnp.exp(-r * c.inv_tau_w)


def serve_refractory(v, w, ref_left, dt, c):
    """Clamped share of the step at its start: (r_a, v, w) with v held at
    v_reset and w relaxed over r_a."""
    r_a = clamped_share(ref_left, dt)
    return r_a, held_v(v, r_a, c), relax_w(w, r_a, c)


def spike_times(state, s, t, crossing_time, track_times):
    """(tols, t_spike) at t from the 0./1. spike array ``s`` (``crossing_time()``: the
    interpolated crossing times, computed only when ``track_times``)."""
    tols = (1. - s) * state.tols + s * t
    t_spike = blend(s, crossing_time(), state.t_spike) if track_times else state.t_spike
    return tols, t_spike


def free_span(rest, dt, c, refractory):
    """The part of the step after a spike that is integrated: the ``rest`` of the step after
    the crossing, less the refractory period (ms, in [0, dt])."""
    return clamp(rest - c.refract_time if refractory else rest, 0., dt)


def after_spike(v1, w1, crossed, drive, rest, dt, c, refractory, method, syn=None):
    """Where the flight ``crossed`` (``w1`` is w after the reset): (v, w) at the
    end of the step, integrated from v_reset over the ``rest`` of the step after
    the refractory period; elsewhere ``(v1, w1)``. ``syn``: the receptors' state
    where that integration starts.

    A second-order Taylor step with the Jacobian at v_reset, where the
    exponential term is a constant of the neuron (error below 1e-3 mV after a
    spike, no exponential to evaluate), or, for the Runge-Kutta integrators
    where every neuron spikes through the upswing of the exponential term, a
    forward Euler step: its error (~1e-3 mV) is far below what the upswing
    costs their spike times (~0.2 ms, about 1 mV at the reset). Where v is
    smooth up to the spike potential (no exponential term, or
    thr <= intrinsic_mem_thr) their spike times are accurate, and so must be
    the step after a spike. The receptors' input ``J - G v_reset`` enters
    through its exact integral over the span (receptors may be faster than
    the step), and G's coupling to v's change through the Jacobian."""
    # Only where the neuron crossed is the result kept, and there every input is finite; where
    # extreme parameters overflow the Jacobian's product (inf, or NaN from inf * 0), the bounds
    # (compare-and-select: a NaN gives the bound) still end the step finite.
    h = free_span(rest, dt, c, refractory)
    dv = (drive - c.v_reset + c.exp_term_reset - c.resist_m * w1) * c.inv_tau_m
    dw = (c.w_refract - w1) * c.inv_tau_w
    if method == "precise" or maybe_any(c.smooth_crossing):
        if syn is None:
            dv2 = c.jac_vv * dv - c.resist_m * c.inv_tau_m * dw
        else:
            G, J = receptors.totals(syn.g, c.receptors)
            dv2 = (c.jac_vv - G * c.inv_tau_m) * (dv + (J - G * c.v_reset) * c.inv_tau_m) \
                - c.resist_m * c.inv_tau_m * dw
        dv, dw = (dv + scaled(0.5 * h, dv2),
                  dw + (0.5 * h) * (c.a * dv - dw) * c.inv_tau_w)
    bound = STATE_BOUND / dt
    v = c.v_reset + h * clamp(dv, -bound, bound)
    if syn is not None:
        int_G, int_J = receptors.integrals(syn, h, c.receptors)
        v = v + clamp((int_J - int_G * c.v_reset) * c.inv_tau_m, -STATE_BOUND, STATE_BOUND)
    w = w1 + h * clamp(dw, -bound, bound)
    return (jnp.where(crossed, clamp(v, -STATE_BOUND, c.v_top), v1),
            jnp.where(crossed, clamp(w, -STATE_BOUND, STATE_BOUND), w1))
