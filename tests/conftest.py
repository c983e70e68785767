"""Shared helpers: unique Contexts, cells and population runs of the Naud presets."""
import itertools

import numpy as np
import pytest
import jax
import jax.numpy as jnp
from ngclearn import Context, MethodProcess

from ngc_adex import AdExCell, preset, preset_kwargs
from ngc_adex import NAUD_PATTERNS as NAUD  # the eight Naud et al. (2008) patterns, Fig. 4a-h
from ngc_adex.simulate import simulate
_ids = itertools.count()


def unique_name(prefix):
    """A Context name used nowhere else (Context names are process-wide singletons)."""
    return f"{prefix}_{next(_ids)}"


def make_cell(n_units=1, **kwargs):
    """An AdExCell in a fresh Context (Context names are process-wide singletons)."""
    with Context(f"t{next(_ids)}"):
        return AdExCell("cell", n_units, **kwargs)


def processes(*components, watch=()):
    """The ``advance`` (every component's advance_state, in the order given) and ``reset`` processes of
    ``components``, made in the current Context; ``advance`` watches ``watch``."""
    advance, reset = MethodProcess("advance"), MethodProcess("reset")
    for component in components:
        advance >> component.advance_state
        reset >> component.reset
    advance.watch(*watch)
    return advance, reset


def run_side_by_side(kwargs, current, steps=2000, dt=0.1, method="euler"):
    """(theirs, ours): v, w, s, tols (numpy, steps x batch x units) of ngc-learn's AdExCell and ours with
    the same arguments (four neurons, ``current`` held), stepped in one MethodProcess."""
    from ngclearn.components.neurons.spiking.adExCell import AdExCell as NgcAdExCell
    with Context(unique_name("side_by_side")):
        ref = NgcAdExCell("ref", 4, **kwargs)
        ours = AdExCell("ours", 4, integration_type=method, **kwargs)
        advance, reset = processes(ref, ours, watch=(ref.v, ref.w, ref.s, ref.tols, ours.v, ours.w, ours.s, ours.tols))
    reset.run()
    j = jnp.asarray(current, dtype=jnp.float32)
    ref.j.set(j)
    ours.j.set(j)
    _, out = advance.scan(jnp.array(advance.pack_rows(steps, t=lambda i: (i + 1) * dt, dt=dt)))
    out = [np.asarray(o) for o in out]
    return out[:4], out[4:]


def stacked_presets(names, **extra):
    """Per-neuron AdExCell kwargs: one neuron per preset."""
    kws = [preset_kwargs(n) for n in names]
    out = {k: [kw[k] for kw in kws] for k in kws[0]}
    out.update(extra)
    return out


def run_presets(names, method, dt, duration=500., **extra):
    """Spike trains (precise times) of one population, one neuron per preset at its published current."""
    cell = make_cell(len(names), integration_type=method, **stacked_presets(names, **extra))
    current = jnp.asarray([[preset(n)["I"] for n in names]], dtype=cell.v.get().dtype)
    return simulate(cell, duration, dt, current).trains()


def spike_errors(times, ref, first=None):
    """(count difference, |error| of the spikes matched in order)."""
    n = min(len(times), len(ref)) if first is None else min(first, len(times), len(ref))
    return len(times) - len(ref), np.abs(np.asarray(times[:n], dtype=np.float64) - ref[:n])


@pytest.fixture(scope="session")
def naud_reference():
    from ngc_adex.reference import spike_times
    return {n: spike_times(preset(n), 500.) for n in NAUD}


def settled_state(state):
    """The state with every leaf a strongly typed jax array.  ngc-learn leaves some compartments as Python
    floats (DenseSynapse.biases) or makes them weak-typed when stepped (LIFCell.s); either changes the
    signature of the compiled process after the first run, and jax would compile it all over again."""
    out = {}
    for key, value in state.items():
        if isinstance(value, (float, int, np.ndarray, np.generic)) and not isinstance(value, bool):
            value = jnp.asarray(value)
        if isinstance(value, jax.Array) and value.weak_type:
            value = jnp.asarray(value, dtype=value.dtype)
        out[key] = value
    return out
