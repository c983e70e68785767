"""What spike-time losses read from a run, and the pieces of such losses.

A :class:`SpikeSummary` keeps, per neuron, the first ``max_spikes`` spike times
(the interpolated crossing times, differentiable), the spike count and the
potential's maximum since the last spike; :func:`summary_update` folds one step's
state into it, so that a run need not keep every step
(:func:`~ngc_adex.numerics.simulate_summary`), and :func:`summarize` builds it
from the states a :func:`~ngc_adex.numerics.simulate_params` run kept.

A spike that does not come has no time, and a loss on its time no gradient:
:func:`pseudo_spike_times` gives each absent spike a time after the end of the
run that falls as the potential comes closer to the threshold, so gradient
descent raises the potential until the spike appears (and the pseudo-time then
hands over to the real one near the end of the run). Spikes beyond a target's
count are pushed out of the run by :func:`extra_spike_penalty`.
:func:`van_rossum_distance` compares two spike trains of different counts in
closed form.
"""
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

#: mV: the least potential scale of :func:`pseudo_spike_times` (where V_T and v_rest nearly coincide)
MIN_DEPTH = 1.


class SpikeSummary(NamedTuple):
    """Per neuron, what spike-time losses read (``shape``: the population's shape).

    Attributes:
        times: the first ``max_spikes`` spike times (ms), ``(max_spikes, *shape)``; +inf where absent

        count: the number of spikes (all of them, also beyond ``max_spikes``), ``shape``

        v_max: the maximum of the membrane potential since the last spike (mV), ``shape``

        final: the state after the last step (:func:`~ngc_adex.numerics.simulate_summary`), or None
    """
    times: jnp.ndarray
    count: jnp.ndarray
    v_max: jnp.ndarray
    final: Optional[object] = None


def summary_start(state, max_spikes):
    """The summary before the first step, from the initial :class:`~ngc_adex.numerics.AdExState`."""
    v = state.v
    return SpikeSummary(times=jnp.full((int(max_spikes), *v.shape), jnp.inf, v.dtype), count=jnp.zeros_like(v),
                        v_max=v)


def summary_update(summary, state):
    """``summary`` with one more step, whose resulting state is ``state``."""
    fired = state.s > 0.5
    slot = jnp.arange(summary.times.shape[0]).reshape((-1,) + (1,) * state.v.ndim)
    times = jnp.where(fired & (slot == summary.count), state.t_spike, summary.times)
    return SpikeSummary(times=times, count=summary.count + fired,
                        v_max=jnp.where(fired, state.v, jnp.maximum(summary.v_max, state.v)), final=summary.final)


def summarize(states, max_spikes=8, v0=None):
    """The :class:`SpikeSummary` of the per-step ``states`` of a
    :func:`~ngc_adex.numerics.simulate_params` run (``v0``: the initial potential, which counts
    towards ``v_max``; Default: None, the first step's)."""
    first = jax.tree_util.tree_map(lambda x: x[0], states)
    start = summary_start(first._replace(v=first.v if v0 is None else jnp.broadcast_to(v0, first.v.shape)),
                          max_spikes)
    return jax.lax.scan(lambda acc, state: (summary_update(acc, state), None), start, states)[0]


def pseudo_spike_times(summary, params, t_end):
    """The spike times of ``summary`` with every absent spike given a pseudo-time after the run:

    .. math::
        t_k = t_\\mathrm{end} + \\tau_m \\left(\\frac{[V_T - v_\\max]_+}{\\max(|V_T - v_\\mathrm{rest}|,
        1\\,\\mathrm{mV})} + k - n\\right), \\qquad k \\geq n

    for the k-th spike (from 0) of a neuron that spiked n times, with v_max its potential's maximum
    since its last spike. The pseudo-time is differentiable in v_max (hence in the parameters and
    the input), falls to t_end as v_max reaches V_T = ``intrinsic_mem_thr`` (where a real spike
    comes near the end of the run), and rises by tau_m for each further absent spike.

    Args:
        summary: a :class:`SpikeSummary`

        params: the :class:`~ngc_adex.numerics.AdExParams` of the run (tau_m, intrinsic_mem_thr,
            v_rest)

        t_end: the end of the run (ms)

    Returns:
        times (ms), shaped like ``summary.times``
    """
    k = jnp.arange(summary.times.shape[0]).reshape((-1,) + (1,) * summary.count.ndim)
    scale = jnp.maximum(jnp.abs(params.intrinsic_mem_thr - params.v_rest), MIN_DEPTH)
    depth = jnp.maximum(params.intrinsic_mem_thr - summary.v_max, 0.) / scale
    pseudo = t_end + params.tau_m * (depth + jax.lax.stop_gradient(k - summary.count))
    return jnp.where(k < summary.count, summary.times, pseudo)


def extra_spike_penalty(summary, n_target, t_end):
    """The summed distance (ms) of the kept spikes beyond each neuron's ``n_target``-th from the end
    of the run, ``t_end``: a loss term whose gradient delays those spikes until they leave the run.

    Returns:
        the penalty per neuron, shaped like ``summary.count``
    """
    k = jnp.arange(summary.times.shape[0]).reshape((-1,) + (1,) * summary.count.ndim)
    extra = (k >= n_target) & (k < summary.count)
    return jnp.sum(jnp.where(extra, t_end - jnp.where(extra, summary.times, t_end), 0.), axis=0)


def van_rossum_distance(a, b, tau):
    """The van Rossum (2001) distance between spike trains ``a`` and ``b`` (spike times in ms along
    axis 0, +inf where absent; the other axes broadcast), in closed form:

    .. math::
        D^2 = \\frac{1}{2}\\Big(\\sum_{ij} e^{-|a_i - a_j|/\\tau} + \\sum_{ij} e^{-|b_i - b_j|/\\tau}
        - 2 \\sum_{ij} e^{-|a_i - b_j|/\\tau}\\Big)

    (the squared L2 distance of the trains filtered by exp(-t/tau), divided by tau; one lone spike
    gives 1/2). Differentiable in the times.

    Returns:
        D^2 (dimensionless) per train
    """
    def kernel_sum(x, y):
        both = jnp.isfinite(x)[:, None] & jnp.isfinite(y)[None, :]
        gap = jnp.where(both, x[:, None] - y[None, :], 0.)
        return jnp.sum(jnp.where(both, jnp.exp(-jnp.abs(gap) / tau), 0.), axis=(0, 1))
    return 0.5 * (kernel_sum(a, a) + kernel_sum(b, b) - 2. * kernel_sum(a, b))
