"""XLA:CPU devices: speed without a change of the mathematics, and the plain path beside them.

Every integrator is written once, in terms of :func:`exp`, :func:`log`,
:func:`materialize`, :func:`land` and :func:`unpack` (with the landing in
between: "precise" lands some lanes again).
On XLA:CPU ("tuned") these are

* float32 exp and log as polynomials (:func:`fast_exp`, :func:`fast_log`),
  which XLA fuses into the surrounding loop, where its own exp and log are
  computed in loops of their own;
* a flight computed once: XLA:CPU cannot fuse a loop with several outputs,
  so it would re-derive the flight (for a Runge-Kutta step: every stage) in
  each consumer of its outputs. The flight's outputs are packed into one
  complex array (the crossing fraction encoded above the spike potential in
  the real part) and computed in a branch of a conditional, which XLA keeps
  materialized instead of fusing it into each consumer.

On the plain path (other backends, which fuse multi-output loops themselves,
or under :func:`plain_numerics` / ``NGC_ADEX_PLAIN_NUMERICS=1``) they are
``jnp.exp``, ``jnp.log`` and a plain call. Both paths agree to rounding for
every integrator (``tests/test_devices.py``). The switch is read when a step
is traced: it applies to functions jitted after it changes.
"""
import contextlib
import os
from functools import partial

import numpy as np
import jax
import jax.numpy as jnp

from .ops import at_least

_plain = [os.environ.get("NGC_ADEX_PLAIN_NUMERICS", "0") not in ("", "0")]


@contextlib.contextmanager
def plain_numerics(enabled=True):
    """Within the block, steps traced take the plain path (``enabled=False``: the tuned one on CPU)."""
    before = _plain[0]
    _plain[0] = bool(enabled)
    try:
        yield
    finally:
        _plain[0] = before


def tuned():
    """Whether a step traced now takes the XLA:CPU devices."""
    return not _plain[0] and jax.default_backend() == "cpu"


def exp(x, coarse=False):
    """exp(x) for x <= EXP_CAP: :func:`fast_exp` when tuned, else ``jnp.exp``."""
    return fast_exp(x, coarse) if tuned() else jnp.exp(x)


def log(x):
    """ln(x) of a positive normal float: :func:`fast_log` when tuned, else ``jnp.log``."""
    return fast_log(x) if tuned() else jnp.log(x)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def fast_exp(x, coarse=False):
    """exp(x) for x <= EXP_CAP.

    In float32 a Cody-Waite reduction and Cephes' expf polynomial in
    Estrin's scheme (at most 1.3 ulp from the correctly rounded value on
    [-87, 60]); ``coarse``: a one-constant reduction and a degree-5 polynomial
    (relative error below 4e-6), for "midpoint" and "rk4", whose step errors
    are orders of magnitude larger. Below -87 it returns ~1e-38 instead of 0
    or a subnormal. Other dtypes use ``jnp.exp``."""
    if jnp.result_type(x) != jnp.float32:
        return jnp.exp(x)
    x = at_least(x, -87.)
    n = jnp.floor(x * 1.4426950408889634 + 0.5)
    if coarse:
        r = x - n * 0.6931471805599453
        r2 = r * r
        p = (5.0000001201e-1 + 1.6666665459e-1 * r) + r2 * (4.1665795894e-2 + 8.3334519073e-3 * r)
    else:
        r = x - n * 0.693359375 + n * 2.12194440e-4  # x - n ln2 in two parts
        r2 = r * r
        # Estrin's scheme: a shorter dependency chain than Horner's
        p = ((5.0000001201e-1 + 1.6666665459e-1 * r) + r2 * (4.1665795894e-2 + 8.3334519073e-3 * r)
             + (r2 * r2) * (1.3981999507e-3 + 1.9875691500e-4 * r))
    # 2^n from the bits of the float 2^23 + n + 127 (exact): no saturating float-to-int conversion
    biased = jax.lax.bitcast_convert_type(n + (127. + 8388608.), jnp.int32) - 0x4B000000
    scale = jax.lax.bitcast_convert_type(biased << 23, jnp.float32)
    return ((1. + r) + p * r2) * scale


@fast_exp.defjvp
def _fast_exp_jvp(coarse, primals, tangents):
    y = fast_exp(primals[0], coarse)
    return y, y * tangents[0]


#: p(f) of fast_log, lowest order first: ln(1 + f) = f - f^2/2 + f^3 p(f) on [sqrt(1/2) - 1, sqrt(2) - 1],
#: the minimax fit of the absolute error (benchmarks/fit_fast_math.py)
LOG_COEFFS = (0.3331744385, -0.2493692913, 0.2049364055, -0.1849603923, 0.1170752222)


@jax.custom_jvp
def fast_log(x):
    """ln(x) of a positive normal float.

    In float32 the exponent comes from the bits (x = 2^k y, y in
    [sqrt(1/2), sqrt(2))) and ln(y) from a degree-7 polynomial fitted on that
    range (:data:`LOG_COEFFS`): absolute error below 4e-7 plus the
    rounding of the result, i.e. below 1e-6 mV in v for v_sharpness <= 2 mV,
    under the float32 resolution of v. Other dtypes use ``jnp.log``."""
    if jnp.result_type(x) != jnp.float32:
        return jnp.log(x)
    # x = 2^k y with y in [sqrt(1/2), sqrt(2)), from the bits, without a select
    ix = jax.lax.bitcast_convert_type(x, jnp.int32) - 0x3F3504F3
    k = jax.lax.shift_right_arithmetic(ix, 23).astype(jnp.float32)
    f = jax.lax.bitcast_convert_type((ix & 0x007FFFFF) + 0x3F3504F3, jnp.float32) - 1.
    f2 = f * f
    a0, a1, a2, a3, a4 = (abs(c) for c in LOG_COEFFS)  # alternating signs: + - + - +
    p = (a0 - a1 * f) + f2 * ((a2 - a3 * f) + f2 * a4)
    return (f - 0.5 * f2) + (f * f2) * p + 0.6931471805599453 * k


@fast_log.defjvp
def _fast_log_jvp(primals, tangents):
    return fast_log(primals[0]), tangents[0] / primals[0]


def _literal(x):
    """A concrete scalar array as a numpy scalar, else ``x``. jax writes numpy scalars that a
    conditional's branch closes over into the branch as literals, but passes jax arrays in as
    operands of the conditional; jaxlib 0.10's XLA:CPU then keeps them as run-time values inside
    the branch, unless the program is partitioned over devices (where they are folded in):
    sharded and unsharded runs would round differently."""
    if isinstance(x, jax.Array) and jnp.ndim(x) == 0:
        try:
            return np.asarray(x)
        except TypeError:  # a tracer: a run-time value anyway
            pass
    return x


def _literals(fn):
    """``fn`` with the scalar constants it is bound to as literals (:func:`_literal`)."""
    if isinstance(fn, partial):
        return partial(fn.func, *fn.args, **jax.tree_util.tree_map(_literal, fn.keywords))
    return fn


def _in_branch(fn, args, dt):
    """``fn(*args)`` computed in a branch of a conditional (both branches the same), which XLA:CPU
    keeps materialized. The predicate must not be known to XLA, or it folds the conditional away:
    ``dt`` comes from an optimization barrier (:func:`ngc_adex.numerics.step.runtime_step`)."""
    return jax.lax.cond(jnp.isfinite(dt), fn, fn, *args)


def _broadcast(args):
    shape = jnp.shape(args[0])
    return tuple(jnp.broadcast_to(x, shape) for x in args)


def materialize(fn, args, dt):
    """``fn(*args)`` (a tuple of arrays shaped like ``args[0]``), each output computed once
    when tuned (a flight as cheap as Euler's: each output in its own loop, unpacked)."""
    args = _broadcast(args)
    return _in_branch(_literals(fn), args, dt) if tuned() else fn(*args)


def land(fn, args, dt, c):
    """``fn(*args)``, a record with fields ``v, w, crossed, theta`` (arrays shaped like
    ``args[0]``), computed once, in the form :func:`unpack` reads: the record (as a tuple)
    on the plain path, one packed complex array when tuned. ``v`` is meant where the flight
    did not cross, ``theta`` where it did, and ``v <= c.v_spike`` where it did not.

    When tuned, the branch returns ``complex(v or the encoded theta, w)``: a crossing
    fraction theta in [0, 1] is written as ``v_spike + (1 + theta) max(1, |v_spike|)``,
    above the spike potential, with a relative resolution of ~1e-7 of the step. Either form
    is a pytree of arrays shaped like ``args[0]``: lanes can be gathered, scattered and
    selected in it."""
    args = _broadcast(args)
    if not tuned():
        out = fn(*args)
        return out.v, out.w, out.crossed, out.theta

    fn, c_in = _literals(fn), jax.tree_util.tree_map(_literal, c)

    def packed(*a):
        out = fn(*a)
        theta_code = c_in.v_spike + (1. + out.theta) * c_in.theta_scale
        return jax.lax.complex(jnp.where(out.crossed, theta_code, out.v), out.w)

    return _in_branch(packed, args, dt)


def landed_v(landed):
    """The ``v`` of a :func:`land` result where the flight did not cross (above ``v_spike`` where it did)."""
    return landed[0] if isinstance(landed, tuple) else jnp.real(landed)


def unpack(landed, c):
    """``(v, w, crossed, theta)`` of a :func:`land` result."""
    if isinstance(landed, tuple):
        return landed
    v, w = jnp.real(landed), jnp.imag(landed)
    return v, w, v > c.v_spike, (v - c.v_spike) * c.inv_theta_scale - 1.

