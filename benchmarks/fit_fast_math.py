"""Where the coefficients of the float32 ``fast_exp`` / ``fast_log`` come from,
and how far from float64 the implementations land.

fast_log: ln(y) for y in [sqrt(1/2), sqrt(2)) is written as
ln(1 + f) = f - f^2/2 + f^3 p(f) with p of degree 4 (degree 7 in all), f in
[sqrt(1/2) - 1, sqrt(2) - 1]. The fit is the minimax of the absolute error of
ln(1 + f): a linear program on a dense grid (the discrete form of Remez'
exchange; the Haar condition fails at f = 0, where every term vanishes, so
Remez' alternation count does not apply). The script prints that fit, the
committed coefficients and the error of both, and asserts the committed ones
meet the bound fast_log's docstring states (4e-7 before rounding). This is
the criterion the committed coefficients were fitted to (same error curve, six
extrema), but they are not reproduced digit for digit: they lie within ~5e-5
(relative) of this fit and their ends of the range peak 0.7% above its
optimum, as a Remez iteration stopped short of full levelling would leave them.

fast_exp: the coefficients are Cephes' expf.c polynomial (S. L. Moshier,
published); nothing is fitted. The fine variant is Cephes' reduction and
polynomial; the coarse one keeps its first four coefficients (degree 5 in
all) with a one-constant reduction. The script measures both.

Usage::

    python benchmarks/fit_fast_math.py            # 2^24 points per measurement
    python benchmarks/fit_fast_math.py --points 1e6
"""
import argparse

import numpy as np
import jax
from scipy.optimize import linprog

from ngc_adex.numerics.devices import LOG_COEFFS as COMMITTED_LOG, fast_exp, fast_log
#: what fast_log's docstring promises before the rounding of the result
LOG_BOUND = 4e-7
F_LO, F_HI = np.sqrt(0.5) - 1., np.sqrt(2.) - 1.


def log_error(coeffs, f):
    """ln(1 + f) from f - f^2/2 + f^3 p(f), minus the float64 value."""
    return f - f * f / 2 + f ** 3 * np.polynomial.polynomial.polyval(f, coeffs) - np.log1p(f)


def fit_log(n_grid=20001, degree=4):
    """Coefficients of p minimising max |error of ln(1 + f)| on a grid of the range."""
    f = np.linspace(F_LO, F_HI, n_grid)
    f = f[f != 0.]
    weight = np.abs(f) ** 3  # |error of ln(1+f)| = |f|^3 |p(f) - target(f)|
    target = (np.log1p(f) - f + f * f / 2) / f ** 3
    # scaled so the optimum is O(1): the LP solver's tolerances are absolute
    scale = 1e4 / weight.max()
    a = np.polynomial.polynomial.polyvander(f, degree) * (weight * scale)[:, None]
    b = target * weight * scale
    n = degree + 1
    ones = np.ones((len(f), 1))
    res = linprog(np.r_[np.zeros(n), 1.], A_ub=np.block([[a, -ones], [-a, -ones]]), b_ub=np.r_[b, -b],
                  bounds=[(None, None)] * n + [(0., None)], method="highs")
    if not res.success:
        raise RuntimeError(res.message)
    return res.x[:n]


def float32_grid(lo, hi, n, seed=0):
    """n float32 values in [lo, hi]: half evenly spaced, half uniform in the bit
    patterns between (so every binade is sampled, however small)."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    even = np.linspace(float(lo32), float(hi32), n // 2).astype(np.float32)

    def order(x):  # float32 -> integer whose order is the float order
        i = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    keys = np.random.default_rng(seed).integers(order(lo32), order(hi32) + 1, n - n // 2)
    bits = np.where(keys < 0, (-keys) | 0x80000000, keys).astype(np.uint32)
    return np.concatenate([even, bits.view(np.float32)])


def exp_errors(x):
    """(max error in ulp of the correctly rounded value, max relative error) of both variants."""
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    out = {}
    for coarse in (False, True):
        got = np.asarray(jax.jit(lambda a: fast_exp(a, coarse=coarse))(x), dtype=np.float64)
        out[coarse] = (np.max(np.abs(got - exact) / ulp), np.max(np.abs(got / exact - 1.)))
    return out


def log_errors(x):
    """(max absolute error, max absolute error beyond one ulp of the result) of fast_log."""
    exact = np.log(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    err = np.abs(np.asarray(jax.jit(fast_log)(x), dtype=np.float64) - exact)
    return np.max(err), np.max(err - ulp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=float, default=2 ** 24, help="points per measurement (Default: 2^24)")
    n = int(ap.parse_args().points)

    print("fast_log: p(f) in ln(1+f) = f - f^2/2 + f^3 p(f), f in [sqrt(1/2)-1, sqrt(2)-1]")
    fitted = fit_log()
    f = np.linspace(F_LO, F_HI, 2_000_001)
    fit_err, committed_err = np.max(np.abs(log_error(fitted, f))), np.max(np.abs(log_error(COMMITTED_LOG, f)))
    print("  minimax |error of ln(1+f)|: " + ", ".join(f"{c:.10f}" for c in fitted)
          + f"   max error {fit_err:.4e}")
    print("  committed:                  " + ", ".join(f"{c:.10f}" for c in COMMITTED_LOG)
          + f"   max error {committed_err:.4e}")
    rel = np.max(np.abs(np.subtract(COMMITTED_LOG, fitted) / fitted))
    print(f"  committed vs fit: coefficients within {rel:.1e} (relative); error {committed_err / fit_err - 1:.2%} "
          f"above the minimax")
    assert committed_err < LOG_BOUND, f"committed fast_log polynomial: {committed_err:.4e} >= {LOG_BOUND:g}"

    tiny, big = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)
    abs_err, beyond = log_errors(float32_grid(tiny, big, n))
    print(f"  float32 fast_log over the positive normal floats ({n} points): max |error| {abs_err:.4e}, "
          f"beyond one ulp of the result {beyond:.4e} (bound {LOG_BOUND:g})")

    print("fast_exp: Cephes expf.c coefficients (published; not fitted here)")
    errors = exp_errors(float32_grid(-87., 60., n))
    for coarse, (ulps, rel) in errors.items():
        print(f"  {'coarse' if coarse else 'fine  '} on [-87, 60] ({n} points): max error {ulps:.3f} ulp "
              f"of the correctly rounded value, max relative error {rel:.3e}")


if __name__ == "__main__":
    main()
