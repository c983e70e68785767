"""A checked simulation mode for debugging.

:func:`checked_simulate` runs exactly the step of :func:`ngc_adex.simulate.simulate`
(the cell's own :func:`ngc_adex.numerics.advance`) under
``jax.experimental.checkify`` and verifies, at every step:

1. the input current fed to each neuron is finite;
2. after the step, v and w are finite;
3. after the step, v does not exceed the spike potential (``thr``, or
   ``intrinsic_mem_thr`` where ``v_sharpness == 0``).

The first violation stops the run with :class:`CheckedSimulationError`, whose
message and attributes name the time of the offending step, the check that
failed and the neuron (flat index ``batch * n_units + unit`` and the
``(batch, unit)`` pair). The checks cost a few extra reductions per step;
use :func:`ngc_adex.simulate.simulate` for production runs.
"""
import re

import numpy as np
import jax
import jax.numpy as jnp
from jax.experimental import checkify

from . import numerics
from .simulate import (_chunk_length, _current_at, _current_only, _finish_run, _input, _keep_if, _n_steps,
                       _run_chunks)

__all__ = ["CheckedSimulationError", "checked_simulate"]

#: the checks, in the order they are evaluated within a step
CHECKS = ("input current j is not finite", "v is not finite", "w is not finite", "v exceeds the spike potential")

_MESSAGE = ("{what} at t={t:.7g} ms (step {step:d}), neuron {neuron:d} (batch {batch:d}, unit {unit:d}): "
            "value {value:.9g}")
_PARSE = re.compile(r"^(?P<what>.+?) at t=(?P<t>\S+) ms \(step (?P<step>\d+)\), neuron (?P<neuron>\d+) "
                    r"\(batch (?P<batch>\d+), unit (?P<unit>\d+)\): value (?P<value>\S+)")


class CheckedSimulationError(FloatingPointError):
    """A check of :func:`checked_simulate` failed.

    Attributes:
        check: which check failed (one of :data:`CHECKS`)

        t: time (ms) at the end of the first offending step

        step: index of that step (1-based, counted from the start of the run)

        neuron: flat index ``batch * n_units + unit`` of the first offending neuron

        batch, unit: the same neuron as a (batch, unit) pair

        value: the offending value (the current, v or w)
    """

    def __init__(self, message):
        super().__init__(message)
        m = _PARSE.match(message)
        self.check = m.group("what") if m else None
        self.t = float(m.group("t")) if m else None
        self.step = int(m.group("step")) if m else None
        self.neuron = int(m.group("neuron")) if m else None
        self.batch = int(m.group("batch")) if m else None
        self.unit = int(m.group("unit")) if m else None
        self.value = float(m.group("value")) if m else None


def _check_all(valid, ok, values, what, t, step, n_units):
    """checkify.check that every element of ``ok`` holds in a ``valid`` step;
    names the first offending neuron (flat index) and its value."""
    flat_ok = ok.reshape(-1)
    first = jnp.argmin(flat_ok).astype(jnp.int32)  # first False (0 if all hold)
    # checkify formats array arguments only: put the (static) description in first
    checkify.check(jnp.all(flat_ok) | ~valid, _MESSAGE.replace("{what}", what), t=t, step=step, neuron=first,
                   batch=first // n_units, unit=first % n_units, value=values.reshape(-1)[first])


def checked_simulate(cell, duration, dt, current=0., t0=0., chunk_steps=1000):
    """Simulates ``cell`` like :func:`ngc_adex.simulate.simulate` (same steps,
    same spikes), checking every step; see the module docstring.

    Args:
        cell: an :class:`~ngc_adex.AdExCell`

        duration: simulated time (ms)

        dt: step (ms)

        current: input current j as for :func:`~ngc_adex.simulate.simulate`:
            a number or array broadcastable to (batch_size, n_units), an array
            with a leading axis of length n_steps, or a JAX-traceable function of t

        t0: time at the start (ms)

        chunk_steps: steps per scan chunk

    Returns:
        :class:`~ngc_adex.simulate.SimulationResult` with the spikes (no traces;
        interpolated times when the cell tracks them, else grid times, as in
        ``simulate``); the cell's compartments hold the final state

    Raises:
        CheckedSimulationError: at the first failed check, naming the step time
            and the neuron; the cell's compartments are then left unchanged

        ValueError: for a bad duration or dt, or an input current whose shape
            does not broadcast to (batch_size, n_units)
    """
    _current_only(cell)
    n_steps = _n_steps(duration, dt)
    shape = (cell.batch_size, cell.n_units)
    n_units = cell.n_units
    step = cell.step_fn
    precise = getattr(cell, "precise_times", True)  # else spikes carry their grid time, as in simulate
    state = numerics.AdExState(*(getattr(cell, name).get() for name in numerics.AdExState._fields))
    dtype = state.v.dtype
    kind, fn, value = _input(current, n_steps)
    v_spike = jnp.asarray(np.broadcast_to(numerics.spike_potential(
        cell.params.v_sharpness, cell.params.intrinsic_mem_thr, cell.params.thr), shape), dtype=dtype)

    def body(state, x, aux):
        t, valid, (step_no, *series) = x
        const, dt_ = aux
        j = _current_at(kind, fn, t, series[0] if series else None, const)
        numerics.check_current_shape(j, shape)  # at trace time
        j_full = jnp.broadcast_to(jnp.asarray(j, dtype=dtype), shape)
        _check_all(valid, jnp.isfinite(j_full), j_full, CHECKS[0], t, step_no, n_units)
        new = numerics.AdExState(*step(*state, j, t, dt_))
        _check_all(valid, jnp.isfinite(new.v), new.v, CHECKS[1], t, step_no, n_units)
        _check_all(valid, jnp.isfinite(new.w), new.w, CHECKS[2], t, step_no, n_units)
        _check_all(valid, new.v <= v_spike, new.v, CHECKS[3], t, step_no, n_units)
        spikes = jnp.where(new.s > 0, new.t_spike if precise else new.tols, jnp.nan).reshape(-1)
        return _keep_if(valid, new, state), spikes

    checked_scan = jax.jit(checkify.checkify(
        lambda c, xs, aux: jax.lax.scan(lambda s, x: body(s, x, aux), c, xs), errors=checkify.user_checks))

    def scan(state, xs, aux):
        err, result = checked_scan(state, xs, aux)
        message = err.get()
        if message is not None:  # raised before the cell's compartments are written
            raise CheckedSimulationError(message.replace(" (`check` failed)", ""))
        return result

    times, index = [], []

    def sink(out, n_valid):
        out = out[:n_valid]
        steps, neuron = np.nonzero(~np.isnan(out))
        times.append(out[steps, neuron])
        index.append(neuron)

    aux = (jnp.zeros((), dtype) if kind != "const" else jnp.asarray(value, dtype), jnp.asarray(dt, dtype))
    # the step number rides along as a per-step series: the messages name it
    series = (jnp.arange(1, n_steps + 1, dtype=jnp.int32),) + (
        (jnp.asarray(value, dtype),) if kind == "series" else ())
    chunk = _chunk_length(chunk_steps, n_steps, shape[0] * shape[1])
    state = _run_chunks(scan, state, aux, series, n_steps, dt, t0, chunk, False, sink)
    return _finish_run(cell, state, t0, dt, n_steps, times, index, {})
