"""The XLA:CPU devices against the plain path (ngc_adex.numerics.devices).

The plain path (jnp.exp / jnp.log, no packing, no encoded crossing fractions)
is what other backends run; CI has only CPUs, so this is what keeps it right:
one step of every integrator from a cloud of states (subthreshold, in the
upswing, above the spike potential, refractory; exponential, integrate-and-fire
and thr < intrinsic_mem_thr neurons) agrees between the two paths to the
rounding of the devices: the same spikes, and v, w and spike times within the
polynomial exp's and log's error (float32) or to float64 rounding.
"""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from ngc_adex import numerics, preset_kwargs
from conftest import NAUD

N = 4096
# v (mV), relative w, t_spike and ref_left (ms)
TOLERANCE = {"float32": (1e-3, 1e-6, 1e-6), "float64": (1e-12, 1e-14, 1e-14)}


def _cloud(dtype):
    rng = np.random.default_rng(0)
    kws = [preset_kwargs(NAUD[i % len(NAUD)]) for i in range(N)]
    p = {k: np.array([kw[k] for kw in kws], dtype=np.float64)[None] for k in numerics.AdExParams._fields}
    p["refract_time"] = rng.choice([0., 0.05, 2.], N)[None]
    p["v_sharpness"][0, ::7] = 0.
    p["thr"][0, 3::11] = p["intrinsic_mem_thr"][0, 3::11] - 2.
    c = numerics.coefficients(numerics.AdExParams(**p), dtype)
    draw = lambda lo, hi: jnp.asarray(rng.uniform(lo, hi, N)[None], dtype)
    state = numerics.AdExState(draw(-80., 0.), draw(-50., 300.), jnp.asarray(rng.choice([0., 0.03, 1.], N)[None], dtype),
                               *(jnp.zeros((1, N), dtype),) * 3)
    return c, state, draw(-200., 1500.)


def _step(method, plain, c, state, j):
    with numerics.plain_numerics(plain):
        step = jax.jit(lambda s: numerics.advance(s, j, 0.1, 0.1, c, method, True))
        packed = "complex" in step.lower(state).as_text()
        return step(state), packed


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_plain_path_agrees_with_the_devices(dtype):
    with jax.enable_x64(dtype == "float64"):
        c, state, j = _cloud(jnp.dtype(dtype))
        tol_v, tol_w, tol_t = TOLERANCE[dtype]
        for method in numerics.METHODS:
            (tuned, packed), (plain, packed_plain) = (_step(method, p, c, state, j) for p in (False, True))
            assert packed == (method != "euler") and not packed_plain, method  # the switch switches
            assert 0.1 * N < float(tuned.s.sum()) < 0.5 * N, method  # the cloud crosses both ways
            np.testing.assert_array_equal(plain.s, tuned.s, err_msg=method)
            np.testing.assert_allclose(plain.v, tuned.v, rtol=0, atol=tol_v, err_msg=method)
            np.testing.assert_allclose(plain.w, tuned.w, rtol=tol_w, atol=tol_w, err_msg=method)
            np.testing.assert_allclose(plain.t_spike, tuned.t_spike, rtol=0, atol=tol_t, err_msg=method)
            np.testing.assert_allclose(plain.ref_left, tuned.ref_left, rtol=0, atol=tol_t, err_msg=method)
            np.testing.assert_array_equal(plain.tols, tuned.tols, err_msg=method)


def test_plain_numerics_restores_the_switch():
    from ngc_adex.numerics import devices
    before = devices.tuned()
    with numerics.plain_numerics():
        assert not devices.tuned()
        with numerics.plain_numerics(False):
            assert devices.tuned()  # on a CPU
        assert not devices.tuned()
    assert devices.tuned() == before
