"""The float32 exp and log of the vector fields against numpy's float64, to the bounds their docstrings
state (benchmarks/fit_fast_math.py derives the coefficients and measures the same errors on more points)."""
import numpy as np
import jax

from ngc_adex.numerics import fast_exp, fast_log


def _every_nth_float32(lo_bits, hi_bits, stride):
    """The float32 values whose bit patterns run from lo_bits to hi_bits in steps of ``stride``: every
    binade is sampled, however small its values."""
    return np.arange(lo_bits, hi_bits + 1, stride, dtype=np.uint32).view(np.float32)


def _exp_points():
    """[-87, 60]: evenly spaced, and through the bit patterns of both signs."""
    return np.concatenate([np.linspace(-87., 60., 400001).astype(np.float32),
                           _every_nth_float32(0x00000000, 0x42700000, 1009),    # [0, 60]
                           _every_nth_float32(0x80000000, 0xC2AE0000, 1009)])   # [-87, -0]


def test_fast_exp_within_1_3_ulp_of_correctly_rounded():
    x = _exp_points()
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    got = np.asarray(jax.jit(fast_exp)(x), dtype=np.float64)
    assert np.max(np.abs(got - exact) / ulp) <= 1.3


def test_coarse_fast_exp_relative_error():
    x = _exp_points()
    exact = np.exp(x.astype(np.float64))
    got = np.asarray(jax.jit(lambda a: fast_exp(a, coarse=True))(x), dtype=np.float64)
    assert np.max(np.abs(got / exact - 1.)) < 4e-6


def test_fast_log_absolute_error_over_the_positive_normal_floats():
    """Absolute error below 4e-7 plus one ulp of the result, from the smallest normal float32 to the
    largest; ln(1) is exactly 0."""
    x = np.concatenate([_every_nth_float32(0x00800000, 0x7F7FFFFF, 997), np.linspace(1e-6, 1., 200001),
                        np.exp(np.linspace(-87., 20., 200001))]).astype(np.float32)
    exact = np.log(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    got = np.asarray(jax.jit(fast_log)(x), dtype=np.float64)
    assert np.max(np.abs(got - exact) - ulp) < 4e-7
    assert np.all(got[x == 1.] == 0.)


def test_derivatives():
    """The bit manipulations have no derivative of their own: the custom JVPs give exp and 1/x."""
    y = np.float32([-20., -1., 0.3, 5.])
    np.testing.assert_allclose(jax.vmap(jax.grad(fast_exp))(y), np.exp(y), rtol=2e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(fast_log))(np.exp(y)), np.exp(-y), rtol=2e-6)
