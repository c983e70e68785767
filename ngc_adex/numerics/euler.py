"""The integrator "euler": ngc-learn's own ``AdExCell`` update, operation for operation.

Forward Euler on (v, w) over the step, the reset at the end of the step where
v ended above the spike potential; the same spikes as ngc-learn's cell
wherever that one stays finite, v and w equal to float32 rounding (XLA
contracts multiply-adds differently from one fusion to another). On top:
bounds that keep the arithmetic reset finite, the refractory clamp, and the
crossing time interpolated linearly between the ends of the step.
"""
from functools import partial

import jax.numpy as jnp

from . import devices, receptors
from .model import EXP_CAP, STATE_BOUND, AdExState, clamp_w
from .ops import blend, maybe_any, unit_ratio
from .reset import clamped_share, held_v, serve_refractory, spike_times
from .surrogate import surrogate_outputs

#: global error O(dt)
ORDER = 1


def exp_factor(v, c):
    """exp((v - intrinsic_mem_thr)/v_sharpness) as ngc-learn computes it (the
    state is within bounds, so only the exponent cap is added)."""
    return jnp.exp(jnp.minimum((v - c.v_t) / c.delta_safe, EXP_CAP))


def flight(v, w, j, ref_left, ex, *, dt, c, refractory):
    """ngc-learn's forward Euler update of (v, w) over the free share of the
    step (before the reset; ``ex``: :func:`exp_factor` at v), bounded so that
    the arithmetic reset stays finite."""
    h_free = dt
    if refractory:
        r_a, v, w = serve_refractory(v, w, ref_left, dt, c)
        ex = exp_factor(v, c)
        h_free = dt - r_a
        j = jnp.where(h_free > 0., j, 0.)  # a neuron clamped for the whole step ignores its input
    # ngc-learn's expression, operation for operation
    dv = (-(v - c.v_rest) + c.delta * ex - c.resist_m * w + c.resist_m * j) * c.inv_tau_m
    dw = (-w + (v - c.v_rest) * c.a) * c.inv_tau_w
    return jnp.clip(v + dv * h_free, -STATE_BOUND, STATE_BOUND), clamp_w(w + dw * h_free)


def advance(state, j, t, dt, c, refractory, track_times, syn=None, weights=None, surrogate=None):
    """ngc-learn's forward Euler step from ``t - dt`` to ``t``, the reset at the end of the step.
    Receptors (``syn``, ``weights``) as ngc-learn's synapses wired into its cell: their update
    first (decay, then the step's events), then the membrane with their current at the step's v;
    ``surrogate``: as :func:`~ngc_adex.numerics.step.advance`'s (v before the reset is v1)."""
    if syn is not None:
        syn = receptors.euler_step(syn, weights, dt, c.receptors)
        j = j + receptors.synaptic_current(syn.g, state.v, c.receptors)
    # the exponential in a loop of its own, which both of the flight's output loops read
    v1, w1 = devices.materialize(partial(flight, dt=dt, c=c, refractory=refractory),
                                 (state.v, state.w, j, state.ref_left, exp_factor(state.v, c)), dt)
    s = (v1 > c.v_spike).astype(v1.dtype)
    x = v1 - c.v_spike  # v before the reset, less the spike potential (surrogate)
    v0, r_a, h_free, ref_left = state.v, 0., dt, state.ref_left
    if refractory:
        r_a = clamped_share(ref_left, dt)
        v0, h_free = held_v(v0, r_a, c), dt - r_a
        if maybe_any(c.v_top > c.v_spike):  # held above the spike potential: no spike while clamped
            s = jnp.where(h_free > 0., s, 0.)
        ref_left = blend(s, c.refract_time, jnp.maximum(ref_left - dt, 0.))
        v1 = jnp.where(ref_left > 0., c.v_reset, v1)  # exactly v_reset while clamped
    # linear interpolation where the step rose through v_spike (then v1 > v0); 0 where it started above
    below = v0 < c.v_spike
    crossing = lambda: (t - dt) + r_a + h_free * jnp.where(
        below, unit_ratio(c.v_spike - v0, jnp.where(below, blend(s, v1 - v0, 1.), 1.)), 0.)
    tols, t_spike = spike_times(state, s, t, crossing, track_times)
    out = AdExState(v=blend(s, c.v_reset, v1), w=clamp_w(blend(s, w1 + c.b, w1)),
                    ref_left=ref_left, s=s, tols=tols, t_spike=t_spike)
    if surrogate is None:
        return out if syn is None else (out, syn)
    return surrogate_outputs(out, syn, x, surrogate)
