"""A pure, differentiable simulation of a population from its parameters.

:func:`simulate_params` takes the physiological parameters as a pytree
(:class:`~ngc_adex.numerics.model.AdExParams` of numbers or arrays) and returns
every step's state, so that ``jax.grad``, ``jax.jit`` and ``jax.vmap`` apply to
any function of them with respect to the parameters, the input current and the
initial state. :func:`spike_time` reads the time of a neuron's n-th spike from
it: the crossing time that the integrator interpolates inside the step, a
differentiable function of all of those (without a surrogate, the spike
counts themselves are piecewise constant). :func:`simulate_summary` keeps only a
:class:`~ngc_adex.numerics.readout.SpikeSummary`, with memory in reverse mode that
does not grow with every step.

Example (the first spike time's gradient with respect to every parameter)::

    p = AdExParams(**{k: kw[k] for k in AdExParams._fields})   # kw = ngc_adex.preset_kwargs("tonic")
    first = lambda p, j: spike_time(simulate_params(p, j, 2000, 0.1).states)[0, 0]
    dp = jax.jit(jax.grad(first))(p, 500.)
"""
from typing import NamedTuple, Optional

import numpy as np
import jax
import jax.numpy as jnp

from .coefficients import coefficients
from .model import AdExParams, AdExState
from .readout import SpikeSummary, summary_start, summary_update
from .ops import maybe_any
from .step import advance


class Trajectory(NamedTuple):
    """What :func:`simulate_params` returns.

    Attributes:
        final: the :class:`~ngc_adex.numerics.model.AdExState` after the last step

        states: the AdExState after every step, each field shaped ``(n_steps, *shape)``
            (``states.t_spike``: the time of the last spike, ms; ``states.s``: the step's spikes)

        surrogate: with a surrogate estimator, its derivative ds/dv of every step
            (1/mV, ``(n_steps, *shape)``); else None
    """
    final: AdExState
    states: AdExState
    surrogate: Optional[jnp.ndarray]


def simulate_params(params: AdExParams, j, n_steps, dt, method="precise", v0=None, w0=0., surrogate=None,
                    dtype=None) -> Trajectory:
    """Simulates a population for ``n_steps`` steps of ``dt`` from t = 0, as a pure function of its
    parameters: differentiable (``jax.grad``) with respect to every field of ``params``, ``j``, ``v0``
    and ``w0``, under ``jax.jit`` and ``jax.vmap`` (over parameter sets, currents or states).

    Parameters are taken as they are (no validation: see :func:`ngc_adex.params.validate` for the
    ranges a cell accepts); concrete ones give, bit for bit, the coefficients an
    :class:`~ngc_adex.AdExCell` of those parameters steps with; traced ones the same to rounding.

    Args:
        params: :class:`~ngc_adex.numerics.model.AdExParams` (ngc-learn units: ms, mV, resistance x
            current in mV), each field a number or an array; the population's shape is
            ``(batch_size, n_units)``, broadcast from the fields, ``v0``, ``w0`` and a constant ``j``

        j: input current (pA with physical units), broadcastable to that shape, constant over the
            run; or a function of t (ms, the end of the step) returning it

        n_steps: number of steps (static)

        dt: step size (ms)

        method: integrator, one of :data:`~ngc_adex.numerics.METHODS` (static; Default: "precise")

        v0: initial membrane potential (mV; Default: None = v_rest)

        w0: initial adaptation current (Default: 0)

        surrogate: None (Default), or a surrogate estimator of the spike output's derivative
            (:data:`~ngc_adex.numerics.surrogate.ESTIMATORS`; static)

        dtype: working dtype (Default: None = float32, float64 under ``jax_enable_x64``)

    Returns:
        a :class:`Trajectory`
    """
    state, step = _stepper(params, j, dt, method, v0, w0, surrogate, dtype)

    def scan_step(state, i):
        out = step(state, i)
        new, ds = out if surrogate is not None else (out, None)
        return new, (new, ds)

    final, (states, ds) = jax.lax.scan(scan_step, state, jnp.arange(n_steps, dtype=state.v.dtype))
    return Trajectory(final=final, states=states, surrogate=ds)


def _stepper(params, j, dt, method, v0, w0, surrogate, dtype):
    """The initial state and the step ``(state, i) -> advance(...)`` (step ``i`` ends at (i + 1) dt)."""
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    v0 = params.v_rest if v0 is None else v0
    shape = np.broadcast_shapes((1, 1), *(jnp.shape(x) for x in (*params, v0, w0, *(() if callable(j) else (j,)))))
    c = coefficients(params, dtype)
    # concrete refract_time = 0 everywhere: the step without the refractory clamp (traced: with it)
    refractory = maybe_any(jnp.asarray(params.refract_time) > 0)
    current = j if callable(j) else (lambda t: j)
    zero = jnp.zeros(shape, dtype)
    state = AdExState(v=zero + jnp.asarray(v0, dtype), w=zero + jnp.asarray(w0, dtype), ref_left=zero, s=zero,
                      tols=zero, t_spike=zero)

    def step(state, i):
        t = (i + 1.) * dt
        return advance(state, jnp.asarray(current(t), dtype), t, dt, c, method, refractory, surrogate=surrogate)

    return state, step


def simulate_summary(params: AdExParams, j, n_steps, dt, method="precise", max_spikes=8, chunk=None, v0=None,
                     w0=0., dtype=None) -> SpikeSummary:
    """Simulates like :func:`simulate_params` but keeps only what spike-time losses read: a
    :class:`~ngc_adex.numerics.readout.SpikeSummary` (the first ``max_spikes`` spike times of each
    neuron, its spike count, its potential's maximum since its last spike, the final state).

    Reverse mode stores the state only at the start of each chunk of ``chunk`` steps and recomputes
    the chunk's steps (``jax.checkpoint``) while it differentiates them, so its memory is
    O(N (chunk + n_steps/chunk)), not the O(N n_steps) of :func:`simulate_params`; the forward
    values are those of :func:`simulate_params`, bit for bit.

    Args:
        params, j, n_steps, dt, method, v0, w0, dtype: as in :func:`simulate_params`

        max_spikes: spike times kept per neuron (static; Default: 8); later spikes are counted only

        chunk: steps per checkpointed chunk (static; Default: None = the integer nearest to
            sqrt(n_steps), which minimizes that memory)

    Returns:
        a :class:`~ngc_adex.numerics.readout.SpikeSummary` at t = n_steps dt
    """
    state, step = _stepper(params, j, dt, method, v0, w0, None, dtype)
    chunk = max(1, int(round(np.sqrt(n_steps)))) if chunk is None else int(chunk)
    n_chunks, rest = divmod(int(n_steps), chunk)
    carry = (state, summary_start(state, max_spikes))

    def steps(carry, first, count):
        def one(carry, i):
            state, summary = carry
            new = step(state, i)
            return (new, summary_update(summary, new)), None
        return jax.lax.scan(one, carry, first + jnp.arange(count, dtype=state.v.dtype))[0]

    chunked = jax.checkpoint(lambda carry, k: (steps(carry, k * chunk, chunk), None))
    carry = jax.lax.scan(chunked, carry, jnp.arange(n_chunks, dtype=state.v.dtype))[0]
    if rest:
        carry = steps(carry, n_chunks * chunk, rest)
    return carry[1]._replace(final=carry[0])


def spike_time(states: AdExState, n=0):
    """The time (ms) of each neuron's ``n``-th spike (0: the first) in ``states`` (a
    :attr:`Trajectory.states`), +inf where it spiked fewer times: the interpolated crossing
    time, differentiable with respect to what the trajectory was computed from."""
    fired = states.s > 0.5
    at = fired & (jnp.cumsum(fired, axis=0) == n + 1)
    return jnp.where(jnp.any(at, axis=0), jnp.sum(jnp.where(at, states.t_spike, 0.), axis=0), jnp.inf)
