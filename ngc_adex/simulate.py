"""Convenience runners: simulate a cell, or any ngc-learn process, for a duration.

Both run ``jax.lax.scan`` over chunks of steps (no Python work per step) and
move only what was asked for to the host after each chunk, so memory does not
grow with the number of steps.
"""
import sys
import time
from typing import Dict, NamedTuple

import numpy as np
import jax
import jax.numpy as jnp

from . import numerics

#: per chunk, at most this many neuron-steps are held on the device for output
_CHUNK_ELEMENTS = 2 ** 25


class SimulationResult(NamedTuple):
    """What :func:`simulate` returns.

    Attributes:
        t: grid times (ms) at the end of each step, shape (n_steps,)

        spike_times: spike times (ms), ordered by step: the interpolated
            crossing times when the cell has ``precise_times``, else the grid times

        spike_index: flat neuron index ``batch * n_units + unit`` of each spike

        traces: recorded variables, name -> array (n_steps, n_recorded)

        n_neurons: batch_size * n_units
    """
    t: np.ndarray
    spike_times: np.ndarray
    spike_index: np.ndarray
    traces: Dict[str, np.ndarray]
    n_neurons: int

    def trains(self):
        """Spike times per neuron: a list of ``n_neurons`` arrays (ms)."""
        order = np.argsort(self.spike_index, kind="stable")
        bounds = np.searchsorted(self.spike_index[order], np.arange(self.n_neurons + 1))
        times = self.spike_times[order]
        return [times[bounds[i]:bounds[i + 1]] for i in range(self.n_neurons)]

    def counts(self):
        """Number of spikes per neuron, shape (n_neurons,)."""
        return np.bincount(self.spike_index, minlength=self.n_neurons)


def step_current(amplitude, start, stop=np.inf, baseline=0.):
    """Input current ``amplitude`` for ``start <= t < stop`` (ms), ``baseline``
    otherwise, as a JAX-traceable function of t for :func:`simulate`."""
    amplitude, baseline = jnp.asarray(amplitude), jnp.asarray(baseline)
    return lambda t: jnp.where((t > start) & (t <= stop), amplitude, baseline)


def _input(current, n_steps):
    """(kind, function, array) describing an input current: "fn" (a function
    of t), "series" (one value per step) or "const"."""
    if callable(current):
        return "fn", current, None
    arr = jnp.asarray(current)
    if arr.ndim >= 1 and arr.shape[0] == n_steps and n_steps > 1:
        return "series", None, arr
    return "const", None, arr


def _current_at(kind, fn, t, series_t, const):
    return fn(t) if kind == "fn" else series_t if kind == "series" else const


class _Progress:
    """A one-line bar on stderr; ``enabled=None`` shows it only for runs
    projected to last more than a few seconds on a terminal."""

    def __init__(self, total, enabled):
        self.total, self.enabled, self.start = total, enabled, time.perf_counter()

    def update(self, done):
        if self.enabled is None:
            projected = (time.perf_counter() - self.start) * self.total / max(done, 1)
            self.enabled = projected > 5. and sys.stderr.isatty()
        if self.enabled:
            frac = done / self.total
            bar = "#" * int(30 * frac)
            sys.stderr.write(f"\r[{bar:<30}] {100 * frac:5.1f}%  {time.perf_counter() - self.start:6.1f} s")
            if done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def _run_chunks(scan, carry, aux, series, n_steps, dt, t0, chunk, progress, sink):
    """Runs ``scan(carry, xs, aux) -> (carry, out)`` chunk by chunk, with
    ``xs = (t, valid, values of the per-step series)``; every chunk has the same
    length (steps past the end are marked invalid), so ``scan`` compiles once.
    ``sink(out, n_valid)`` receives each chunk's output on the host."""
    bar = _Progress(n_steps, progress)
    for i0 in range(0, n_steps, chunk):
        idx = jnp.arange(i0, i0 + chunk)
        valid = idx < n_steps
        values = tuple(a[jnp.minimum(idx, n_steps - 1)] for a in series)
        carry, out = scan(carry, (t0 + (idx + 1) * dt, valid, values), aux)
        sink(jax.device_get(out), min(chunk, n_steps - i0))
        bar.update(min(i0 + chunk, n_steps))
    return carry


def _chunk_length(chunk_steps, n_steps, elements_per_step):
    """Steps per chunk: at most ``chunk_steps``, and few enough that a chunk's
    output of ``elements_per_step`` values a step fits in :data:`_CHUNK_ELEMENTS`."""
    return int(max(1, min(chunk_steps, n_steps, _CHUNK_ELEMENTS // max(elements_per_step, 1))))


def _cached_scan(owner, key, body):
    """A jitted ``lax.scan`` of ``body`` kept on ``owner``, so repeated runs reuse the compilation."""
    cache = owner.__dict__.setdefault("_ngc_adex_scans", {})
    if key not in cache:
        cache[key] = jax.jit(lambda carry, xs, aux: jax.lax.scan(lambda c, x: body(c, x, aux), carry, xs))
    return cache[key]


def _keep_if(valid, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(valid, a, b), new, old)


def _n_steps(duration, dt):
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number > 0 ms, got {dt!r}")
    if not (np.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a finite number > 0 ms, got {duration!r}")
    return max(1, int(round(duration / dt)))


def simulate(cell, duration, dt, current=0., record=(), neurons=None, t0=0., chunk_steps=1000,
             progress=None, spikes=True):
    """Simulates an :class:`~ngc_adex.AdExCell` for ``duration`` ms.

    The cell starts from its compartments' current values and they hold the
    final state afterwards, so calls can be chained.

    Args:
        cell: the AdExCell

        duration: simulated time (ms)

        dt: step (ms)

        current: input current j: a number or array broadcastable to
            (batch_size, n_units) held constant; an array with a leading axis
            of length n_steps (one value per step); or a JAX-traceable
            function of t (ms), e.g. :func:`step_current`

        record: compartments to record, among "v", "w", "ref_left", "s",
            "tols", "t_spike"

        neurons: flat indices of the neurons to record (Default: all)

        t0: time at the start (ms)

        chunk_steps: steps per scan chunk (reduced so a chunk's output fits
            in memory for large populations)

        progress: show a progress bar on stderr (Default: for long runs on
            a terminal)

        spikes: collect spike times (set False for pure throughput runs)

    Returns:
        :class:`SimulationResult`
    """
    _current_only(cell)
    n_steps = _n_steps(duration, dt)
    shape = (cell.batch_size, cell.n_units)
    n_neurons = shape[0] * shape[1]
    unknown = set(record) - set(numerics.AdExState._fields)
    if unknown:
        raise ValueError(f"record must name compartments among {', '.join(numerics.AdExState._fields)}; "
                         f"got {sorted(unknown)}")
    rec_idx = jnp.arange(n_neurons) if neurons is None else jnp.asarray(neurons, dtype=jnp.int32).ravel()
    chunk = _chunk_length(chunk_steps, n_steps, n_neurons if spikes else len(rec_idx))
    kind, fn, value = _input(current, n_steps)
    step, precise = cell.step_fn, cell.precise_times

    def body(state, x, aux):
        t, valid, series = x
        const, rec, dt_ = aux
        j = _current_at(kind, fn, t, series[0] if series else None, const)
        new = _keep_if(valid, numerics.AdExState(*step(*state, j, t, dt_)), state)
        out = {name: getattr(new, name).reshape(-1)[rec] for name in record}
        if spikes:  # one bit per neuron, and the times to read at the set bits
            out["_spikes"] = jnp.packbits(new.s.reshape(-1) > 0)
            out["_t"] = new.t_spike.reshape(-1) if precise else t
        return new, out

    scan = _cached_scan(cell, ("simulate", kind, fn, tuple(record), spikes), body)
    times, index, traces = [], [], {name: [] for name in record}

    def sink(out, n_valid):
        for name in record:
            traces[name].append(out[name][:n_valid])
        if spikes:
            steps, neuron = _set_bits(out["_spikes"][:n_valid])
            times.append(out["_t"][steps, neuron] if precise else out["_t"][steps])
            index.append(neuron)

    state = numerics.AdExState(*(getattr(cell, name).get() for name in numerics.AdExState._fields))
    dtype = state.v.dtype
    aux = (jnp.zeros((), dtype) if value is None or kind == "series" else jnp.asarray(value, dtype),
           rec_idx, jnp.asarray(dt, dtype))
    series = (jnp.asarray(value, dtype),) if kind == "series" else ()
    state = _run_chunks(scan, state, aux, series, n_steps, dt, t0, chunk, progress, sink)
    return _finish_run(cell, state, t0, dt, n_steps, times, index,
                       {name: np.concatenate(traces[name]) for name in record})


def _current_only(cell):
    """Raises for a cell with receptor ports, whose inputs only a Context's processes feed."""
    if getattr(cell, "receptor_names", ()):
        raise ValueError(f"cell '{cell.name}' has receptor ports {cell.receptor_names}: run it in its Context "
                         f"(MethodProcess.scan, or simulate_process), where synapses feed the ports")


def _set_bits(packed):
    """(row, bit) of every set bit of ``np.packbits`` rows, in row-major
    order; only the nonzero bytes are unpacked (spikes are sparse)."""
    rows, cols = np.nonzero(packed)
    k, bit = np.nonzero(np.unpackbits(packed[rows, cols][:, None], axis=1))
    return rows[k], cols[k] * 8 + bit


def _finish_run(cell, state, t0, dt, n_steps, times, index, traces):
    """Writes the final state back to the cell's compartments and assembles the result."""
    for name in numerics.AdExState._fields:
        getattr(cell, name).set(getattr(state, name))
    return SimulationResult(
        t=t0 + dt * np.arange(1, n_steps + 1),
        spike_times=np.concatenate(times) if times else np.zeros(0),
        spike_index=np.concatenate(index).astype(np.int64) if index else np.zeros(0, dtype=np.int64),
        traces=traces, n_neurons=cell.batch_size * cell.n_units)


def simulate_process(process, duration, dt, inputs=(), t0=0.,
                     chunk_steps=1000, progress=None, state=None):
    """Runs an ngc-learn ``MethodProcess`` (e.g. a circuit's advance chain)
    for ``duration`` ms in chunked scans.

    Args:
        process: a compiled ``ngclearn.MethodProcess`` whose methods take
            ``t`` and/or ``dt``; what it ``watch``-es is returned per step

        duration: simulated time (ms)

        dt: step (ms)

        inputs: pairs (compartment, current), each current written into the
            compartment before every step; currents as for :func:`simulate`

        t0: time at the start (ms)

        chunk_steps: steps per scan chunk

        progress: show a progress bar on stderr (Default: for long runs)

        state: starting global state (Default: the live one); the final state
            is written back to the global state

    Returns:
        (t, watched): grid times (n_steps,) and a tuple of arrays
        (n_steps, ...), one per watched compartment
    """
    from ngcsimlib.global_state import stateManager

    n_steps = _n_steps(duration, dt)
    keywords = set(process.get_keywords())
    if not keywords <= {"t", "dt"}:
        raise ValueError(f"simulate_process drives processes with arguments t and dt only; "
                         f"{process.name} needs {sorted(keywords)}")
    inputs = [(comp.root, *_input(value, n_steps)) for comp, value in inputs]
    kinds = tuple((root, kind, fn) for root, kind, fn, _ in inputs)
    run = process.run.compiled

    def body(ctx, x, aux):
        t, valid, series = x
        consts, dt_ = aux
        feed, k_series = {}, 0
        for (root, kind, fn), const in zip(kinds, consts):
            value = _current_at(kind, fn, t, series[k_series] if kind == "series" else None, const)
            k_series += kind == "series"
            feed[root] = jnp.broadcast_to(value, ctx[root].shape).astype(ctx[root].dtype)
        new, out = run({**ctx, **feed}, jnp.stack(process.pack_keywords(t=t, dt=dt_)))
        return _keep_if(valid, new, ctx), out

    chunk = int(max(1, min(chunk_steps, n_steps)))
    scan = _cached_scan(process, ("process", kinds), body)
    ctx = dict(stateManager.state if state is None else state)
    dtype = jnp.zeros(()).dtype
    consts = tuple(jnp.zeros((), dtype) if kind != "const" else jnp.asarray(v, dtype) for _, kind, _, v in inputs)
    series = tuple(jnp.asarray(v, dtype) for _, kind, _, v in inputs if kind == "series")
    chunks = []
    ctx = _run_chunks(scan, ctx, (consts, jnp.asarray(dt, dtype)), series, n_steps, dt, t0, chunk, progress,
                      lambda out, n_valid: chunks.append(tuple(o[:n_valid] for o in out)))
    stateManager.set_state(ctx)
    watched = tuple(np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0])))
    return t0 + dt * np.arange(1, n_steps + 1), watched
