"""Elementwise operations whose semantics the steps rely on.

* Clamps by compare-and-select (:func:`at_least`, :func:`at_most`,
  :func:`clamp`): a NaN argument gives the bound, where ``jnp.maximum`` would
  propagate it; the fields they bound carry a NaN input through their other
  terms, so a NaN still reaches the neuron it is fed to and no other.
* :func:`blend`: ngc-learn's arithmetic spelling of a reset, ``a s + b (1 - s)``.
* Quotients with derivatives written to stay finite (:func:`safe_ratio`,
  :func:`quotient`, :func:`unit_ratio`, :func:`unit_newton`, :func:`scaled`).
  ``jax.grad`` through a step is finite for every finite state and input. JAX
  differentiates x/y as -x y^-2, which overflows for ``|y| < ~1e-19``, and the zero
  cotangent of a quotient that is clipped or discarded (a step spent
  refractory, v that does not move, a neuron that does not cross) times that
  inf, or times an inf or NaN the forward pass computed and then discarded, is
  NaN. A select on the denominator would cure it but changes how XLA fuses the
  step and with it the forward rounding; these functions are their plain
  expressions without differentiation and carry custom derivatives.
* Trace-time queries on coefficients (:func:`surely_all`, :func:`maybe_any`),
  which let a step leave out code that no neuron of a population needs.
"""
import numpy as np
import jax
import jax.numpy as jnp


def at_least(x, bound):
    """max(x, bound) by compare-and-select; a NaN ``x`` gives ``bound``."""
    return jnp.where(x > bound, x, bound)


def at_most(x, bound):
    """min(x, bound) by compare-and-select; a NaN ``x`` gives ``bound``."""
    return jnp.where(x < bound, x, bound)


def clamp(x, lo, hi):
    """x clamped to [lo, hi] by compare-and-select; a NaN ``x`` gives ``hi``."""
    return at_most(at_least(x, lo), hi)


def blend(s, a, b):
    """``a`` where ``s == 1``, ``b`` where ``s == 0`` (``s`` a 0./1. array), exact
    for finite ``a`` and ``b``: ngc-learn's own spelling of the reset."""
    return a * s + b * (1. - s)


def horner(coeffs, theta):
    """The polynomial with coefficients ``coeffs`` (constant first) at ``theta``."""
    acc = coeffs[-1]
    for ck in coeffs[-2::-1]:
        acc = acc * theta + ck
    return acc


def _static(x):
    """``x`` as a NumPy array when it is known at trace time, else None."""
    try:
        return np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return None


def surely_all(x):
    """Whether every element of ``x`` is known at trace time to be true."""
    known = _static(x)
    return known is not None and bool(known.all())


def maybe_any(x):
    """Whether some element of ``x`` may be true (unknown at trace time counts)."""
    known = _static(x)
    return known is None or bool(known.any())


@jax.custom_jvp
def safe_ratio(num, den):
    """num/den, 0 where den = 0; the derivative (tn - q td)/den, finite where den is tiny."""
    ok = den != 0.
    return jnp.where(ok, num / jnp.where(ok, den, 1.), 0.)


@safe_ratio.defjvp
def _safe_ratio_jvp(primals, tangents):
    num, den = primals
    out = safe_ratio(num, den)
    ok = den != 0.
    return out, jnp.where(ok, (tangents[0] - out * tangents[1]) / jnp.where(ok, den, 1.), 0.)


@jax.custom_jvp
def quotient(num, den):
    """num/den, den never 0 but possibly tiny where the quotient is discarded: the derivative
    (tn - q td)/den, finite wherever q is."""
    return num / den


@quotient.defjvp
def _quotient_jvp(primals, tangents):
    num, den = primals
    q = num / den
    return q, (tangents[0] - q * tangents[1]) / den


def _unit_jvp(q, t_lin, t_num, den):
    """(q, the tangent t_lin + t_num/den where 0 < q < 1, else 0) for a crossing fraction q clipped to
    [0, 1]: a clipped fraction (or one whose denominator vanished) contributes exactly 0."""
    inside = (q > 0.) & (q < 1.)
    return q, jnp.where(inside, t_lin + t_num / jnp.where(inside, den, 1.), 0.)


def _not_nan(q):
    """q, 0 where q is NaN (0/0: v at the spike potential and not moving, where the neuron does not
    cross). Under differentiation only: no output takes such a fraction, but the derivatives of the
    products it enters would carry its NaN (0 * NaN)."""
    return jnp.where(q == q, q, 0.)


@jax.custom_jvp
def unit_ratio(num, den):
    """clip(num/den, 0, 1) (a crossing fraction), with a finite derivative for every finite num and den."""
    return jnp.clip(num / den, 0., 1.)


@unit_ratio.defjvp
def _unit_ratio_jvp(primals, tangents):
    num, den = primals
    q = _not_nan(unit_ratio(num, den))
    return _unit_jvp(q, 0., tangents[0] - q * tangents[1], den)


@jax.custom_jvp
def unit_newton(theta, num, den):
    """theta - num/den clamped to [0, 1] (a Newton step on a crossing fraction), with a finite derivative."""
    return jnp.clip(theta - num / den, 0., 1.)


@unit_newton.defjvp
def _unit_newton_jvp(primals, tangents):
    theta, num, den = primals
    q = _not_nan(unit_newton(theta, num, den))
    # where 0 < q < 1, num/den = theta - q (up to rounding): finite
    return _unit_jvp(q, tangents[0], (theta - q) * tangents[2] - tangents[1], den)


@jax.custom_jvp
def scaled(h, x):
    """h * x, where x may overflow to inf (a product that a clamp downstream discards): the derivative
    in h is taken as 0 there instead of NaN (0 * inf) from that clamp's zero cotangent."""
    return h * x


@scaled.defjvp
def _scaled_jvp(primals, tangents):
    h, x = primals
    return h * x, tangents[0] * jnp.where(jnp.abs(x) < jnp.inf, x, 0.) + h * tangents[1]
