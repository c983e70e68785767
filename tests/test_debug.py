"""ngc_adex.debug.checked_simulate: the checkify-checked simulation mode."""
import itertools
import os

import numpy as np
import jax.numpy as jnp
import pytest
from ngclearn import Context
from ngcsimlib.context import contextManager

from ngc_adex import AdExCell
from ngc_adex.debug import CHECKS, CheckedSimulationError, checked_simulate
from ngc_adex.simulate import simulate, step_current

_names = itertools.count()
LONG = os.environ.get("NGC_ADEX_LONG_TESTS", "").strip() not in ("", "0")


def _cell(**kwargs):
    name = f"test_debug_{next(_names)}"
    with Context(name):
        cell = AdExCell("z", **kwargs)
    contextManager.remove_context(name)
    return cell


def _restart(cell):
    """Puts the cell back to its initial state (v0, w0, nothing else)."""
    shape = (cell.batch_size, cell.n_units)
    cell.v.set(cell._v_init)
    cell.w.set(cell._w_init)
    for name in ("ref_left", "s", "tols", "t_spike"):
        getattr(cell, name).set(jnp.zeros(shape, dtype=cell._v_init.dtype))


def _state(cell):
    return {n: np.asarray(getattr(cell, n).get()) for n in ("v", "w", "ref_left", "s", "tols", "t_spike")}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["euler", "precise"])
def test_nan_current_names_step_and_neuron(method):
    cell = _cell(n_units=4, batch_size=2, integration_type=method, refract_time=1.)
    before = _state(cell)
    j = np.full((2, 4), 300.)
    j[1, 2] = np.nan  # flat neuron 1 * 4 + 2 = 6
    with pytest.raises(CheckedSimulationError) as info:
        checked_simulate(cell, 5., 0.1, j)
    err = info.value
    assert err.check == CHECKS[0]
    assert (err.neuron, err.batch, err.unit, err.step) == (6, 1, 2, 1)
    assert err.t == pytest.approx(0.1)
    assert np.isnan(err.value)
    message = str(err)
    assert "neuron 6" in message and "t=0.1 ms" in message and "input current" in message
    # a failed run leaves the cell untouched
    for name, value in _state(cell).items():
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.slow
def test_nan_current_first_offending_step_time():
    cell = _cell(n_units=3, integration_type="rk4")
    # finite until t = 2.5 ms, then neuron 1 is fed NaN: the error names t = 2.5 (step 25)
    current = lambda t: jnp.where((t > 2.45) & (jnp.arange(3) == 1), jnp.nan, 300.)
    with pytest.raises(CheckedSimulationError, match=r"t=2\.5 ms \(step 25\), neuron 1 ") as info:
        checked_simulate(cell, 10., 0.1, current)
    assert info.value.neuron == 1 and info.value.step == 25


@pytest.mark.slow
def test_nan_in_current_series():
    """A current given per step (leading axis n_steps): NaN first at step 7, neuron 2."""
    cell = _cell(n_units=3)
    series = np.full((20, 1, 3), 50.)
    series[6:, 0, 2] = np.nan
    series[9:, 0, 0] = np.nan  # later offenders are not the first
    with pytest.raises(CheckedSimulationError) as info:
        checked_simulate(cell, 2., 0.1, series)
    assert (info.value.step, info.value.neuron) == (7, 2)
    assert info.value.t == pytest.approx(0.7)


@pytest.mark.slow
def test_inf_current_is_reported():
    cell = _cell(n_units=3)
    j = np.array([0., np.inf, 0.])
    with pytest.raises(CheckedSimulationError, match="neuron 1 ") as info:
        checked_simulate(cell, 1., 0.1, j)
    assert info.value.check == CHECKS[0]


@pytest.mark.slow
def test_state_checks_fire_on_a_broken_step(monkeypatch):
    """The v/w/spike-potential checks, exercised with a deliberately broken step."""
    for check, broken in [
        (CHECKS[1], lambda v, w, *rest: (v.at[0, 2].set(jnp.nan), w, *rest)),
        (CHECKS[2], lambda v, w, *rest: (v, w.at[0, 1].set(jnp.inf), *rest)),
        (CHECKS[3], lambda v, w, *rest: (v.at[0, 0].set(1e3), w, *rest)),
    ]:
        cell = _cell(n_units=3)
        real = cell.step_fn
        with monkeypatch.context() as patch:
            patch.setattr(type(cell), "step_fn",
                          property(lambda self, _real=real, _broken=broken: lambda *a: _broken(*_real(*a))))
            with pytest.raises(CheckedSimulationError) as info:
                checked_simulate(cell, 1., 0.1, 10.)
        assert info.value.check == check
        assert info.value.step == 1


def test_wrong_current_shape_names_j():
    cell = _cell(n_units=3, batch_size=2)
    with pytest.raises(ValueError, match=r"input current j has shape \(3, 1\).*\(2, 3\)"):
        checked_simulate(cell, 1., 0.1, np.ones((3, 1)))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["euler", "precise"] + (["midpoint", "rk4"] if LONG else []))
def test_clean_run_matches_simulate(method):
    kw = dict(n_units=5, batch_size=2, integration_type=method, refract_time=[0., 0.5, 1., 2., 0.],
              v_sharpness=[2., 0., 0.5, 2., 5.], intrinsic_mem_thr=-55., thr=5.)
    cell = _cell(**kw)
    current = np.linspace(0., 400., 10).reshape(2, 5)
    # 2 chunks of equal length: one compilation each, state carried across chunks
    checked = checked_simulate(cell, 100., 0.1, current, chunk_steps=500)
    end_checked = _state(cell)
    _restart(cell)
    plain = simulate(cell, 100., 0.1, current, chunk_steps=500)
    end_plain = _state(cell)
    assert plain.spike_times.size > 10
    np.testing.assert_array_equal(checked.spike_index, plain.spike_index)
    np.testing.assert_array_equal(checked.spike_times, plain.spike_times)
    np.testing.assert_array_equal(checked.t, plain.t)
    for name in end_plain:
        np.testing.assert_array_equal(end_checked[name], end_plain[name])


@pytest.mark.slow
def test_clean_run_time_varying_current():
    cell = _cell(n_units=4, integration_type="midpoint")
    current = step_current(np.array([100., 200., 300., 400.]), start=20., stop=80.)
    checked = checked_simulate(cell, 100., 0.1, current)
    _restart(cell)
    plain = simulate(cell, 100., 0.1, current)
    assert plain.spike_times.size > 5
    np.testing.assert_array_equal(checked.spike_times, plain.spike_times)
    np.testing.assert_array_equal(checked.spike_index, plain.spike_index)


def test_steps_past_the_end_of_the_last_chunk_are_not_checked():
    """The last chunk is padded to the chunk length; its steps past the duration
    (here fed NaN) neither fail a check nor change the state."""
    cell = _cell(n_units=3, integration_type="precise")
    current = lambda t: jnp.where(t > 1.05, jnp.nan, 400.)  # NaN only after the 10 steps of the run
    checked = checked_simulate(cell, 1., 0.1, current, chunk_steps=4)
    end_checked = _state(cell)
    _restart(cell)
    plain = simulate(cell, 1., 0.1, current, chunk_steps=4)
    np.testing.assert_array_equal(checked.spike_times, plain.spike_times)
    for name, value in _state(cell).items():
        np.testing.assert_array_equal(end_checked[name], value)
        assert np.all(np.isfinite(value)), name
