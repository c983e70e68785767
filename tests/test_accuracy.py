"""Spike-time accuracy against the high-accuracy reference (ngc_adex/reference.py), float32 (dt = 0.1 ms unless stated)."""
import numpy as np
import pytest
import jax.numpy as jnp

from conftest import make_cell, run_presets, spike_errors, stacked_presets
from ngc_adex import NAUD_PATTERNS as NAUD
from ngc_adex import preset, preset_kwargs
from ngc_adex.reference import NEST_PARAMS, NEST_SPIKES, NEST_T, NEST_V0, NEST_W0, simulate_reference, spike_times
from ngc_adex.simulate import simulate

CHAOTIC = "irregular"


def pattern_errors(trains, reference):
    """Per non-chaotic pattern: (count difference, mean |error|, max |error|)."""
    out = {}
    for name, times in zip(NAUD, trains):
        if name != CHAOTIC:
            dn, err = spike_errors(times, reference[name])
            out[name] = (dn, err.mean(), err.max())
    return out


@pytest.fixture(scope="module")
def trains_dt01():
    return {m: run_presets(NAUD, m, 0.1) for m in ("euler", "rk4", "precise")}


@pytest.mark.slow
def test_precise_reproduces_every_naud_pattern(trains_dt01, naud_reference):
    errors = pattern_errors(trains_dt01["precise"], naud_reference)
    assert all(dn == 0 for dn, _, _ in errors.values()), errors
    assert np.median([mean for _, mean, _ in errors.values()]) <= 1e-3, errors
    assert max(mx for _, _, mx in errors.values()) <= 1e-2, errors
    # the chaotic pattern: its first spikes and its count
    dn, err = spike_errors(trains_dt01["precise"][NAUD.index(CHAOTIC)], naud_reference[CHAOTIC], first=5)
    assert abs(dn) <= 1 and err.max() <= 1e-2


@pytest.mark.slow
def test_precise_stays_accurate_at_small_steps(naud_reference):
    """Ten times more steps must not add float32 error: a bias of ~1e-6 mV per
    step (e.g. from a logarithm's error in v) adds up to ~2e-3 ms at dt = 0.01."""
    errors = pattern_errors(run_presets(NAUD, "precise", 0.01), naud_reference)
    assert all(dn == 0 for dn, _, _ in errors.values()), errors
    assert np.median([mean for _, mean, _ in errors.values()]) <= 5e-4, errors


@pytest.mark.slow
def test_rk4_at_least_four_times_more_accurate_than_euler(trains_dt01, naud_reference):
    def median_error(method):
        errors = pattern_errors(trains_dt01[method], naud_reference)
        return np.median([mean for _, mean, _ in errors.values()])
    assert 4. * median_error("rk4") <= median_error("euler")


def test_nest_aeif_problem():
    kw = dict(preset_kwargs("tonic"))
    kw.update(tau_m=200. / 11., resist_m=1. / 11., tau_w=300., a=3., b=0., v_reset=-58., v0=NEST_V0, w0=NEST_W0)
    cell = make_cell(1, integration_type="precise", **kw)
    times = simulate(cell, NEST_T, 0.1, NEST_PARAMS["I"]).trains()[0]
    assert len(times) == len(NEST_SPIKES)
    assert np.abs(times - NEST_SPIKES).max() <= 1e-3
    # the reference solver agrees with NEST's converged values, so both anchors are consistent
    ref = spike_times(NEST_PARAMS, NEST_T, v0=NEST_V0, w0=NEST_W0)
    assert np.abs(ref - NEST_SPIKES).max() <= 1e-5


@pytest.mark.slow
def test_brette_gerstner_population_400_to_1600_pA():
    currents = np.linspace(400., 1600., 13)
    p = preset("brette_gerstner_2005")
    cell = make_cell(len(currents), integration_type="precise", **preset_kwargs("brette_gerstner_2005"))
    trains = simulate(cell, 500., 0.1, jnp.asarray(currents[None, :], dtype=jnp.float32)).trains()
    means = []
    for current, times in zip(currents, trains):
        dn, err = spike_errors(times, spike_times(p, 500., I=current))
        assert dn == 0, (current, dn)
        if len(err):  # the lowest currents are below rheobase
            assert err.max() <= 1e-2, (current, err.max())
            means.append(err.mean())
    assert len(means) >= 10 and np.median(means) <= 1e-3


@pytest.mark.slow
def test_state_is_grid_synchronous_after_spikes(naud_reference):
    """After every step the compartments hold the state at t, also for a
    neuron that spiked inside it (reset at the crossing, rest of the step integrated)."""
    names = ("tonic", "adapting", "regular_bursting")
    dt, duration = 0.1, 200.
    cell = make_cell(len(names), integration_type="precise", **stacked_presets(names))
    current = jnp.asarray([[preset(n)["I"] for n in names]], dtype=jnp.float32)
    res = simulate(cell, duration, dt, current, record=("v", "w", "ref_left"))
    assert np.all(res.traces["ref_left"] == 0.)
    for k, name in enumerate(names):
        ref = simulate_reference(preset(name), duration, t_eval=res.t)
        spiked_steps = np.searchsorted(res.t, ref["spikes"])  # the grid point right after each spike
        assert len(spiked_steps) >= 5 and spiked_steps[-1] < len(res.t)
        # the reference is at the reset or past it: v moved off v_reset during the rest of the step
        assert np.all(res.traces["v"][spiked_steps, k] != preset(name)["Vr"])
        dv = np.abs(res.traces["v"][spiked_steps, k] - ref["v"][spiked_steps])
        dw = np.abs(res.traces["w"][spiked_steps, k] - ref["w"][spiked_steps])
        assert dv.max() <= 2e-3 and dw.max() <= 2e-3, (name, dv.max(), dw.max())


@pytest.mark.slow
def test_precise_with_a_sharp_exponential():
    """v_sharpness = 0.5 mV, where a step moves v by more than v_sharpness below threshold: v comes
    from the series of v itself there, and its exponential (rho) takes over only near the spike
    (summed from rho everywhere, v fell instead of rising at 1000 pA: 0.7 ms mean error)."""
    kw = dict(preset_kwargs("tonic"), v_sharpness=0.5)
    currents = (500., 1000.)
    cell = make_cell(len(currents), integration_type="precise", **kw)
    trains = simulate(cell, 200., 0.1, jnp.asarray([currents], dtype=jnp.float32)).trains()
    for current, times, bound in zip(currents, trains, (2e-3, 0.1)):
        dn, err = spike_errors(times, spike_times(dict(preset("tonic"), DT=0.5, I=current), 200.))
        assert dn == 0 and err.mean() <= bound, (current, dn, err.mean())


@pytest.mark.slow
@pytest.mark.parametrize("sharpness,current", [(0.5, 3000.), (0.5, 6000.), (2., 10000.)])
def test_precise_covers_steps_under_strong_drive(sharpness, current):
    """Where the input moves v by several v_sharpness per step, the series' reach cuts a flight
    short and sub-flights cover the rest of the step: the reference's count (with a single flight,
    which left the neuron behind, 215 of 249, 472 of 501, 382 of 477) and rk4's accuracy at least."""
    kw = dict(preset_kwargs("tonic"), v_sharpness=sharpness)
    ref = spike_times(dict(preset("tonic"), DT=sharpness, I=current), 200.)
    trains = {m: simulate(make_cell(1, integration_type=m, **kw), 200., 0.1,
                          jnp.asarray([[current]], dtype=jnp.float32)).trains()[0] for m in ("precise", "rk4")}
    dn, err = spike_errors(trains["precise"], ref)
    _, err_rk4 = spike_errors(trains["rk4"], ref)
    assert dn == 0 and err.mean() <= min(1e-2, err_rk4.mean()), (dn, err.mean(), err_rk4.mean())


@pytest.mark.slow
def test_precise_beyond_its_sub_flights():
    """Beyond the sub-flights' reach (the input moves v by ~20 v_sharpness per step, an ISI of about
    one step), rk4 flights finish the step: no neuron lags. What is left is the step after a spike
    (a second-order step from the reset): the count is within 3% of the reference's and ten times
    closer than rk4's, the mean spike-time error below rk4's."""
    kw = dict(preset_kwargs("tonic"), v_sharpness=0.5)
    ref = spike_times(dict(preset("tonic"), DT=0.5, I=20000.), 200.)
    trains = {m: simulate(make_cell(1, integration_type=m, **kw), 200., 0.1,
                          jnp.asarray([[20000.]], dtype=jnp.float32)).trains()[0] for m in ("precise", "rk4")}
    dn, err = spike_errors(trains["precise"], ref)
    dn_rk4, err_rk4 = spike_errors(trains["rk4"], ref)
    assert abs(dn) <= 0.03 * len(ref) and 10 * abs(dn) <= abs(dn_rk4), (dn, dn_rk4, len(ref))
    assert err.mean() < err_rk4.mean(), (err.mean(), err_rk4.mean())
