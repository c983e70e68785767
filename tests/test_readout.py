"""Spike-time losses (issue 17): the spike summary and its checkpointed runner, pseudo-times of
absent spikes, the extra-spike penalty, the van Rossum distance and the coincidence factor."""
import numpy as np
import jax
import jax.numpy as jnp
import optax
import pytest

from ngc_adex import preset, preset_kwargs
from ngc_adex.analysis import coincidence_factor
from ngc_adex.numerics import (AdExParams, extra_spike_penalty, pseudo_spike_times, simulate_params,
                               simulate_summary, summarize, van_rossum_distance)
from ngc_adex.reference import spike_times

PARAMS = AdExParams(**{k: v for k, v in preset_kwargs("adapting").items() if k in AdExParams._fields})
CURRENTS = jnp.linspace(0., 900., 6)[None, :]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["euler", "rk4", "precise"])
def test_summary_runner_equals_the_full_run(method):
    """simulate_summary (checkpointed chunks, a remainder) gives the summary of simulate_params' states
    bit for bit: the first spikes' times, the counts, v's maximum since the last spike, the final state."""
    states = simulate_params(PARAMS, CURRENTS, 1003, 0.1, method).states
    full = summarize(states, 8, v0=PARAMS.v_rest)
    chunked = simulate_summary(PARAMS, CURRENTS, 1003, 0.1, method, max_spikes=8, chunk=50)
    for name in ("times", "count", "v_max"):
        assert np.asarray(getattr(full, name)).tobytes() == np.asarray(getattr(chunked, name)).tobytes(), name
    assert np.asarray(chunked.final.v).tobytes() == np.asarray(states.v[-1]).tobytes()
    # the summary's times are the spike raster's, in order
    for lane in range(CURRENTS.shape[1]):
        fired = np.asarray(states.s[:, 0, lane]) > 0.5
        raster = np.asarray(states.t_spike[:, 0, lane])[fired]
        assert int(full.count[0, lane]) == raster.size
        np.testing.assert_array_equal(np.asarray(full.times[:min(raster.size, 8), 0, lane]), raster[:8])
        assert np.all(np.isinf(np.asarray(full.times[raster.size:, 0, lane])))


def _reverse_mode_bytes(n_steps, checkpointed, n=1000):
    """XLA's temporaries of a compiled reverse-mode gradient of n neurons over n_steps steps."""
    params = AdExParams(*(jnp.full((1, n), x, jnp.float32) for x in PARAMS))
    if checkpointed:
        f = lambda q: jnp.sum(simulate_summary(q, 500., n_steps, 0.1, "euler", 4, chunk=250).v_max)
    else:
        f = lambda q: jnp.sum(summarize(simulate_params(q, 500., n_steps, 0.1, "euler").states, 4).v_max)
    return jax.jit(jax.grad(f)).lower(params).compile().memory_analysis().temp_size_in_bytes


@pytest.mark.slow
def test_checkpointed_reverse_mode_memory_is_flat_in_steps():
    """Reverse mode through simulate_summary keeps the state at each chunk's start and the chunk being
    differentiated: 8x the steps costs little more memory; through simulate_params it grows with them."""
    short, long = _reverse_mode_bytes(2000, True), _reverse_mode_bytes(16000, True)
    full_short, full_long = _reverse_mode_bytes(2000, False), _reverse_mode_bytes(16000, False)
    assert long < 1.3 * short, (short, long)
    assert full_long > 6. * full_short, (full_short, full_long)
    assert long < full_long / 20., (long, full_long)


def _first_spike_loss(j, t_target, t_end):
    """Squared error of the first spike's time (ms), a pseudo-time where it is absent, plus the penalty
    of spikes beyond the first inside the run."""
    n_steps = int(round(t_end / 0.1))
    summary = summarize(simulate_params(PARAMS, j, n_steps, 0.1).states, 4, v0=PARAMS.v_rest)
    times = pseudo_spike_times(summary, PARAMS, t_end)
    return (times[0, 0, 0] - t_target) ** 2 + extra_spike_penalty(summary, 1, t_end)[0, 0], summary.count[0, 0]


@pytest.mark.slow
def test_absent_and_extra_spikes_are_fitted_away():
    """The current that gives a first spike at the reference's time for 700 pA, found by gradient
    descent from 200 pA (no spike at all: the pseudo-time leads) and from 1500 pA (three or more spikes
    in the run: the penalty removes the extra ones)."""
    p = preset("adapting")
    first, second = spike_times(p, 100., I=700., rtol=1e-11)[:2]
    t_end = 0.5 * (first + second)  # the run holds the first spike of 700 pA only
    loss = lambda j: _first_spike_loss(j, first, t_end)   # (t_end: static, the run's length)
    grad = jax.jit(jax.vmap(jax.value_and_grad(loss, has_aux=True)))
    j = jnp.asarray([200., 1500.], jnp.float32)
    counts0 = grad(j)[0][1]
    assert list(np.asarray(counts0)) == [0, int(counts0[1])] and counts0[1] >= 3, counts0
    opt = optax.adam(20.)
    state = opt.init(j)
    for _ in range(300):
        (value, count), g = grad(j)
        step, state = opt.update(g, state)
        j = optax.apply_updates(j, step)
    np.testing.assert_allclose(np.asarray(j), 700., atol=1.)
    assert list(np.asarray(count)) == [1, 1]
    assert np.all(np.sqrt(np.asarray(value)) < 0.02), value


def _filtered(times, t, tau):
    return sum(np.where(t >= s, np.exp(-(t - s) / tau), 0.) for s in times if np.isfinite(s))


def test_van_rossum_distance_is_the_filtered_trains_l2_distance():
    """Closed form against the integral (1/tau) int (f_a - f_b)^2 dt of the exp-filtered trains, and its
    gradient against central differences."""
    tau = 10.
    a = np.array([5., 20., 21.5, np.inf])
    b = np.array([6., 30., np.inf, np.inf])
    t = np.linspace(0., 400., 400001)
    integral = np.trapezoid((_filtered(a, t, tau) - _filtered(b, t, tau)) ** 2, t) / tau
    ours = float(van_rossum_distance(jnp.asarray(a), jnp.asarray(b), tau))
    np.testing.assert_allclose(ours, integral, rtol=1e-3)
    assert float(van_rossum_distance(jnp.asarray([7.]), jnp.asarray([np.inf]), tau)) == pytest.approx(0.5)
    g = jax.grad(lambda x: van_rossum_distance(x, jnp.asarray(b), tau))(jnp.asarray(a))
    for i in range(3):
        e = np.zeros(4)
        e[i] = 1e-3
        fd = (float(van_rossum_distance(jnp.asarray(a + e), jnp.asarray(b), tau))
              - float(van_rossum_distance(jnp.asarray(a - e), jnp.asarray(b), tau))) / 2e-3
        np.testing.assert_allclose(float(g[i]), fd, rtol=2e-2, atol=1e-4)
    assert float(g[3]) == 0.


def test_coincidence_factor():
    """Gamma: 1 for the same train (also shifted within the window), the chance-corrected count of
    Kistler et al. (1997) for a small case, and about 0 on average for independent Poisson trains."""
    data = np.arange(10., 1000., 20.)
    assert coincidence_factor(data, data, 1000.) == 1.
    assert coincidence_factor(data, data + 3.9, 1000.) == 1.
    # one coincidence (10 / 12 ms); chance 2 * 4 ms * 2 spikes / 100 ms = 0.16
    expected = (1. - 0.16 * 3) / (0.5 * 5 * (1. - 0.16))
    assert coincidence_factor([10., 50., 90.], [12., 70.], 100.) == pytest.approx(expected)
    rng = np.random.default_rng(0)
    gammas = [coincidence_factor(np.sort(rng.uniform(0., 1000., 20)), np.sort(rng.uniform(0., 1000., 20)), 1000.)
              for _ in range(400)]
    assert abs(np.mean(gammas)) < 0.05
