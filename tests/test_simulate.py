"""The convenience runner: the spikes it collects chunk by chunk are the ones the cell emitted."""
import numpy as np
import pytest
import jax.numpy as jnp

from conftest import make_cell
from ngc_adex import preset_kwargs
from ngc_adex.simulate import simulate


@pytest.mark.slow
@pytest.mark.parametrize("method,precise_times", [("euler", False), ("euler", True), ("precise", True)])
def test_collected_spikes_are_the_recorded_ones(method, precise_times):
    """37 neurons (not a whole number of bytes of spike bits), 3.5 chunks:
    spike_index / spike_times against the s and t_spike traces of the same run."""
    n = 37
    cell = make_cell(n, integration_type=method, precise_times=precise_times, **preset_kwargs("tonic"))
    current = jnp.linspace(300., 1500., n, dtype=jnp.float32)[None]
    res = simulate(cell, 70., 0.1, current, record=("s", "t_spike"), chunk_steps=200)
    steps, neuron = np.nonzero(res.traces["s"])  # ordered by step, then neuron
    assert len(steps) > 50 and len(np.unique(neuron)) > 20
    np.testing.assert_array_equal(res.spike_index, neuron)
    if precise_times:
        np.testing.assert_array_equal(res.spike_times, res.traces["t_spike"][steps, neuron])
        slack = 1e-4  # float32 times near 70 ms
        assert np.all(res.spike_times >= res.t[steps] - 0.1 - slack) and np.all(res.spike_times <= res.t[steps] + slack)
    else:
        np.testing.assert_allclose(res.spike_times, res.t[steps], atol=1e-5)  # the step times, in float32
