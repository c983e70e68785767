"""Pure-JAX numerics of the AdEx cell: vector field, steppers, spike and reset.

Nothing here imports ngcsimlib; the :class:`~ngc_adex.AdExCell` component is a
thin shell around :func:`advance`. Units follow ngc-learn's parameterisation
(ms, mV, and ``resist_m * j`` / ``resist_m * w`` in mV)::

    tau_m dv/dt = -(v - v_rest) + v_sharpness exp((v - intrinsic_mem_thr)/v_sharpness)
                  - resist_m w + resist_m j
    tau_w dw/dt = -w + a (v - v_rest)
    spike when v crosses thr (intrinsic_mem_thr if v_sharpness = 0):
        v <- v_reset, w <- w + b, v held at v_reset for refract_time ms.

Integrators (``method``):

* ``"euler"``: forward Euler on (v, w), reset at the end of the step; ngc-learn's
  own ``AdExCell`` operation for operation wherever that one stays finite (the
  same spikes; v and w agree to float32 rounding, as XLA contracts multiply-adds
  differently from one fusion to another).
* ``"midpoint"`` / ``"rk4"``: Runge-Kutta on the coupled (v, w) system, reset at
  the (linearly interpolated) crossing.
* ``"precise"``: classical RK4 in transformed variables (P, q) in which the
  spike upswing is linear in time and the log singularity of w is removed;
  the crossing is located on RK4's cubic dense output. Spike times agree with
  an exact solution to about 1e-4 ms at dt = 0.1 ms in float32.

Every integrator but "euler" resets a neuron at its crossing and integrates
the rest of the step from the reset (one explicit step in (v, w), after the
refractory period), so the compartments hold the state at the end of every step.

The transformed variables (``D = v_sharpness``, ``vT = intrinsic_mem_thr``,
``U = U_DEPTH``)::

    m = exp(-(v - vT)/D)                    (-> 0 at the spike)
    P = D m   for v >= vT - U D,  continued linearly in v below
    q = w - kappa psi(min(m, 1)),  psi(m) = m ln m - m + 1,  kappa = a D tau_m/tau_w

give ``tau_m dP/dt = -(m G + D)`` (the exponential term becomes the constant D)
and ``tau_w dq/dt = -w + a (min(v, vT) - v_rest) + a min(m, 1) ln(min(m, 1)) G``
with ``G = -(v - v_rest) - resist_m (w - j)``: near the spike ``P`` falls
linearly to ``P_peak = D exp(-(thr - vT)/D)``, every term is continuous, and
a step needs one logarithm per stage (v from P) and no exponential. Below
``vT - U D`` the exponential term (< D e^-U) is dropped and ``m`` in ``m G``
is capped at ``e^U``. With ``D = 0`` they reduce to ``P = vT + 1 - v``,
``q = w`` (plain integrate-and-fire).

Overflow safety: inside every right-hand side v is clamped to the spike
potential (as NEST does) and to a finite floor, w to a finite box, and the
exponent to ``EXP_CAP``; states leaving a step are clamped the same way and
resets select between finite values. No finite input can produce NaN or inf;
a NaN input current only affects the neuron it is fed to.

Cost: every integrator but "euler" integrates each neuron once per step,
plus one explicit step over the rest of the step (see :func:`advance`); on
XLA:CPU the flight is one fused loop computed once (:func:`_materialized_pair`)
with float32 exp/log that fuse into it (:func:`fast_exp`, :func:`fast_log`).
"""
from functools import partial
from typing import NamedTuple

import numpy as np
import jax
import jax.numpy as jnp

#: cap on (v - intrinsic_mem_thr)/v_sharpness inside exp(); exp(60) ~ 1e26
#: keeps float32 finite and shifts spike times by ~tau_m * exp(-60)
EXP_CAP = 60.
#: |v| and |w| never exceed this (mV / pA); reached only by diverging runs
STATE_BOUND = 1e9
#: below intrinsic_mem_thr - U_DEPTH v_sharpness the transformed potential continues linearly
#: in v and the exponential term (below v_sharpness exp(-U_DEPTH) ~ 2e-9 v_sharpness) is dropped
U_DEPTH = 20.

METHODS = ("euler", "midpoint", "rk4", "precise")
#: accepted spellings of each integrator
METHOD_ALIASES = {"euler": "euler", "rk1": "euler", "midpoint": "midpoint", "rk2": "midpoint",
                  "rk4": "rk4", "precise": "precise"}


class AdExParams(NamedTuple):
    """Physiological parameters, each a scalar or an array broadcastable to
    ``(batch_size, n_units)``; ngc-learn units (ms, mV, resistance x current in mV)."""
    tau_m: object
    resist_m: object
    tau_w: object
    v_sharpness: object
    intrinsic_mem_thr: object
    thr: object
    v_rest: object
    v_reset: object
    a: object
    b: object
    refract_time: object


class Coefficients(NamedTuple):
    """Everything the step needs, derived once from :class:`AdExParams`."""
    inv_tau_m: jnp.ndarray
    inv_tau_w: jnp.ndarray
    resist_m: jnp.ndarray
    delta: jnp.ndarray        # v_sharpness
    delta_safe: jnp.ndarray   # v_sharpness, 1 where it is 0 (no division by zero)
    inv_delta: jnp.ndarray    # 1/delta_safe
    has_exp: jnp.ndarray      # v_sharpness > 0
    v_t: jnp.ndarray          # intrinsic_mem_thr
    v_spike: jnp.ndarray      # potential at which a spike is registered
    v_rest: jnp.ndarray
    v_reset: jnp.ndarray
    a: jnp.ndarray
    b: jnp.ndarray
    refract_time: jnp.ndarray
    w_refract: jnp.ndarray    # w relaxes to a (v_reset - v_rest) while clamped
    kappa: jnp.ndarray        # a D tau_m / tau_w
    p_peak: jnp.ndarray       # P at the spike (1 where v_sharpness = 0)
    psi_peak: jnp.ndarray     # psi(m) at the spike
    u_depth: jnp.ndarray      # U_DEPTH where v_sharpness > 0, else 0
    m_cap: jnp.ndarray        # exp(u_depth): beyond it P continues linearly in v
    inv_m_cap: jnp.ndarray    # exp(-u_depth)
    p_floor: jnp.ndarray      # P at v = -STATE_BOUND
    theta_scale: jnp.ndarray  # max(1, |v_spike|): crossing fractions are packed above v_spike
    inv_theta_scale: jnp.ndarray
    exp_reset: jnp.ndarray    # the exponential term at v_reset (mV)
    jac_vv: jnp.ndarray       # d(dv/dt)/dv at v_reset (1/ms)


class AdExState(NamedTuple):
    """Per-neuron state, arrays shaped ``(batch_size, n_units)``.

    ``ref_left`` is the refractory time still to serve (ms); ``tols`` is the
    time of the step of the last spike and ``t_spike`` the interpolated time
    of the last threshold crossing, both in the time base of ``t``."""
    v: jnp.ndarray
    w: jnp.ndarray
    ref_left: jnp.ndarray
    s: jnp.ndarray
    tols: jnp.ndarray
    t_spike: jnp.ndarray


def spike_potential(v_sharpness, intrinsic_mem_thr, thr):
    """Potential (mV) at which a spike is registered: ``thr``, or
    ``intrinsic_mem_thr`` in the integrate-and-fire limit ``v_sharpness = 0``."""
    return np.where(np.asarray(v_sharpness) > 0, thr, intrinsic_mem_thr)


def _psi_of_log(m, log_m):
    return m * log_m - m + 1.


def coefficients(params: AdExParams, dtype=jnp.float32) -> Coefficients:
    """Derives the step's constants from validated parameters (in float64,
    then cast to ``dtype``)."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params._asdict().items()}
    delta = p["v_sharpness"]
    has_exp = delta > 0
    d_safe = np.where(has_exp, delta, 1.)
    v_spike = spike_potential(delta, p["intrinsic_mem_thr"], p["thr"])
    x_peak = np.minimum((p["thr"] - p["intrinsic_mem_thr"]) / d_safe, EXP_CAP)
    log_m_peak = np.where(has_exp, -x_peak, 0.)
    m_peak = np.exp(log_m_peak)
    u_depth = np.where(has_exp, U_DEPTH, 0.)
    m_cap = np.exp(u_depth)
    exp_reset = delta * np.exp(np.minimum((p["v_reset"] - p["intrinsic_mem_thr"]) / d_safe, EXP_CAP))
    np_dtype = np.dtype(jnp.dtype(dtype).name)
    # reciprocals rounded in the working precision, as ngc-learn's cell computes them (bitwise Euler match)
    inv_tau_m, inv_tau_w = (np_dtype.type(1.) / p[k].astype(np_dtype) for k in ("tau_m", "tau_w"))
    out = dict(
        inv_tau_m=inv_tau_m, inv_tau_w=inv_tau_w, resist_m=p["resist_m"],
        delta=delta, delta_safe=d_safe, inv_delta=1. / d_safe, has_exp=has_exp, v_t=p["intrinsic_mem_thr"],
        v_spike=v_spike, v_rest=p["v_rest"], v_reset=p["v_reset"], a=p["a"], b=p["b"],
        refract_time=p["refract_time"], w_refract=p["a"] * (p["v_reset"] - p["v_rest"]),
        kappa=p["a"] * delta * p["tau_m"] / p["tau_w"],
        p_peak=np.where(has_exp, delta * m_peak, 1.),
        psi_peak=_psi_of_log(m_peak, log_m_peak),
        u_depth=u_depth, m_cap=m_cap, inv_m_cap=1. / m_cap,
        p_floor=d_safe * m_cap * (1. + (p["intrinsic_mem_thr"] + STATE_BOUND) / d_safe - u_depth),
        theta_scale=np.maximum(1., np.abs(v_spike)), inv_theta_scale=1. / np.maximum(1., np.abs(v_spike)),
        exp_reset=exp_reset, jac_vv=(exp_reset / d_safe - 1.) / p["tau_m"],
    )
    return Coefficients(**{k: (jnp.asarray(v) if np.asarray(v).dtype == bool else jnp.asarray(v, dtype=dtype))
                           for k, v in out.items()})


# ----------------------------------------------------------------------------
# vector fields
# ----------------------------------------------------------------------------
def _clamp_v(v, c):
    return jnp.clip(v, -STATE_BOUND, c.v_spike)


def _clamp_w(w):
    return jnp.clip(w, -STATE_BOUND, STATE_BOUND)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def fast_exp(x, coarse=False):
    """exp(x) for x <= EXP_CAP (the Runge-Kutta fields, the (v, w) -> (P, q) map).

    In float32 a Cody-Waite reduction and Cephes' expf polynomial in
    Estrin's scheme (at most 1.3 ulp from the correctly rounded value on
    [-87, 60]), which XLA:CPU fuses into the surrounding arithmetic instead of
    materializing it like its own exp; ``coarse``: a one-constant reduction
    and a degree-5 polynomial (relative error below 4e-6), ~15% cheaper for
    "midpoint" and "rk4", whose step errors are orders of magnitude larger.
    Below -87 it returns ~1e-38 instead of 0 or a subnormal. Other dtypes use
    ``jnp.exp``."""
    if jnp.result_type(x) != jnp.float32:
        return jnp.exp(x)
    x = _lower(x, -87.)
    n = jnp.floor(x * 1.4426950408889634 + 0.5)
    if coarse:
        r = x - n * 0.6931471805599453
        r2 = r * r
        p = (5.0000001201e-1 + 1.6666665459e-1 * r) + r2 * (4.1665795894e-2 + 8.3334519073e-3 * r)
    else:
        r = x - n * 0.693359375 + n * 2.12194440e-4  # x - n ln2 in two parts
        r2 = r * r
        # Cephes' polynomial, evaluated in Estrin's scheme: a shorter dependency chain than Horner's
        p = ((5.0000001201e-1 + 1.6666665459e-1 * r) + r2 * (4.1665795894e-2 + 8.3334519073e-3 * r)
             + (r2 * r2) * (1.3981999507e-3 + 1.9875691500e-4 * r))
    # 2^n from the bits of the float 2^23 + n + 127 (exact): no saturating float-to-int conversion
    biased = jax.lax.bitcast_convert_type(n + (127. + 8388608.), jnp.int32) - 0x4B000000
    scale = jax.lax.bitcast_convert_type(biased << 23, jnp.float32)
    return ((1. + r) + p * r2) * scale


def _lower(x, bound):
    """max(x, bound) as compare-and-select: XLA's NaN-propagating maximum costs
    several instructions on x86; here a NaN x gives ``bound`` (the clamped
    fields still carry a NaN input through their other terms)."""
    return jnp.where(x > bound, x, bound)


def _upper(x, bound):
    """min(x, bound) as compare-and-select (see :func:`_lower`)."""
    return jnp.where(x < bound, x, bound)


@fast_exp.defjvp
def _fast_exp_jvp(coarse, primals, tangents):
    y = fast_exp(primals[0], coarse)
    return y, y * tangents[0]


@jax.custom_jvp
def fast_log(x):
    """ln(x) for the transformed potential of "precise" (a positive normal float).

    In float32 the exponent comes from the bits (x = 2^k y, y in
    [sqrt(1/2), sqrt(2)), without a select) and ln(y) from a degree-7
    polynomial fitted on that range: absolute error below 4e-7 plus the
    rounding of the result, i.e. below 1e-6 mV in v for v_sharpness <= 2 mV,
    under the float32 resolution of v. It fuses into the surrounding loop
    (XLA:CPU's own log does not). Other dtypes use ``jnp.log``."""
    if jnp.result_type(x) != jnp.float32:
        return jnp.log(x)
    # x = 2^k y with y in [sqrt(1/2), sqrt(2)), from the bits, without a select
    ix = jax.lax.bitcast_convert_type(x, jnp.int32) - 0x3F3504F3
    k = jax.lax.shift_right_arithmetic(ix, 23).astype(jnp.float32)
    f = jax.lax.bitcast_convert_type((ix & 0x007FFFFF) + 0x3F3504F3, jnp.float32) - 1.
    f2 = f * f
    p = (0.3331744385 - 0.2493692913 * f) + f2 * ((0.2049364055 - 0.1849603923 * f) + f2 * 0.1170752222)
    return (f - 0.5 * f2) + (f * f2) * p + 0.6931471805599453 * k


@fast_log.defjvp
def _fast_log_jvp(primals, tangents):
    return fast_log(primals[0]), tangents[0] / primals[0]


def _all(x):
    """Whether every element of ``x`` is known at trace time to be true."""
    known = _static(x)
    return known is not None and bool(known.all())


def vw_field(v, w, drive, c: Coefficients):
    """(dv/dt, dw/dt) in ms^-1 at state (v, w) under ``drive = v_rest +
    resist_m j`` (mV), for the Runge-Kutta integrators.

    v is clamped to the spike potential (NEST's min(V, V_peak)) and to a
    finite floor, w to a finite box and the exponent to ``EXP_CAP``, so any
    stage value of a Runge-Kutta step gives a finite field."""
    v = _upper(_lower(v, -STATE_BOUND), c.v_spike)
    w = _upper(_lower(w, -STATE_BOUND), STATE_BOUND)
    exp_term = c.delta * fast_exp(_upper((v - c.v_t) * c.inv_delta, EXP_CAP), coarse=True)
    dv = (drive - v + exp_term - c.resist_m * w) * c.inv_tau_m
    dw = (c.a * (v - c.v_rest) - w) * c.inv_tau_w
    return dv, dw


def _clamp_p(P, c: Coefficients, lower=_lower, upper=_upper):
    """P between the spike (P_peak) and the floor v = -STATE_BOUND."""
    return upper(lower(P, c.p_peak), c.p_floor)


def _linear_part(m, c: Coefficients, lower=_lower):
    """(v_T - v)/D - ln min(m, m_cap): the linear continuation of P beyond m_cap."""
    return lower(m * c.inv_m_cap - 1., 0.)


def _decode_p(P, c: Coefficients):
    """(m, min(m, m_cap), its log, v) from a clamped transformed potential P."""
    m = P * c.inv_delta
    mm = _upper(m, c.m_cap)
    log_m = fast_log(mm)
    return m, mm, log_m, c.v_t - c.delta_safe * (log_m + _linear_part(m, c))


def _psi_terms(m, log_m):
    """(min(m, 1) ln min(m, 1), psi(min(m, 1)))."""
    m1, log_m1 = _upper(m, 1.), _upper(log_m, 0.)
    return m1 * log_m1, _psi_of_log(m1, log_m1)


def _encode_v(v, c: Coefficients):
    """P at a potential v, with what :func:`_decode_p` would give there
    (ln min(m, m_cap) is min(-x, u_depth): no log needed)."""
    v = _clamp_v(v, c)
    x = (v - c.v_t) * c.inv_delta
    log_m = jnp.minimum(-x, c.u_depth)
    mm = jnp.minimum(fast_exp(log_m), c.m_cap)
    P = c.delta_safe * mm * (1. + jnp.maximum(-x - c.u_depth, 0.))
    return P, (P * c.inv_delta, mm, log_m, v)


def to_pq(v, w, c: Coefficients):
    """(v, w) -> transformed (P, q), and :func:`_decode_p` of P."""
    P, decoded = _encode_v(v, c)
    return (P, w - c.kappa * _psi_terms(decoded[0], decoded[2])[1]), decoded


def from_pq(P, q, c: Coefficients, start):
    """Transformed (P, q) -> (v, w) at the end of a flight that began at
    ``start`` (:func:`_decode_p` there). v is the start's potential plus
    D ln(m0/m): the logarithm of a ratio near 1 is accurate to a fraction of
    its size, so that v carries no bias from the logarithm's own error
    (which, step after step, would add up to microseconds at dt = 0.01 ms).
    A NaN stays NaN (NaN-propagating clamps)."""
    m = _clamp_p(P, c, jnp.maximum, jnp.minimum) * c.inv_delta
    m0, mm0, log_m0, v0 = start
    log_ratio = fast_log(jnp.minimum(m, c.m_cap) / mm0)
    v = v0 - c.delta_safe * (log_ratio + _linear_part(m, c, jnp.maximum) - _linear_part(m0, c))
    return v, _clamp_w(q + c.kappa * _psi_terms(m, log_m0 + log_ratio)[1])


def pq_field(P, q, drive, c: Coefficients, decoded=None):
    """(dP/dt, dq/dt) in ms^-1 under ``drive = v_rest + resist_m j``; smooth
    through the spike upswing. ``decoded``: :func:`_decode_p` of P where
    already known."""
    if decoded is None:
        decoded = _decode_p(_clamp_p(P, c), c)
    m, mm, log_m, v = decoded
    ml, psi = _psi_terms(m, log_m)
    w = _upper(_lower(q + c.kappa * psi, -STATE_BOUND), STATE_BOUND)
    g = drive - v - c.resist_m * w
    dP = -(mm * g + c.delta) * c.inv_tau_m
    dq = (c.a * (v - c.v_rest + c.delta * _upper(log_m, 0.) + ml * g) - w) * c.inv_tau_w
    return dP, dq


# ----------------------------------------------------------------------------
# explicit Runge-Kutta steps on a pair of arrays
# ----------------------------------------------------------------------------
def _axpy(x, h, k):
    return tuple(xi + h * ki for xi, ki in zip(x, k))


def step_midpoint(f, x, h):
    """Explicit midpoint (RK2). Returns (x1, stages)."""
    k1 = f(x)
    k2 = f(_axpy(x, 0.5 * h, k1))
    return _axpy(x, h, k2), (k1, k2)


def step_rk4(f, x, h, k1=None):
    """Classical fourth-order Runge-Kutta (``k1``: f(x) where already known).
    Returns (x1, stages)."""
    k1 = f(x) if k1 is None else k1
    k2 = f(_axpy(x, 0.5 * h, k1))
    k3 = f(_axpy(x, 0.5 * h, k2))
    k4 = f(_axpy(x, h, k3))
    x1 = tuple(xi + (h / 6.) * (a + 2. * b + 2. * cc + d) for xi, a, b, cc, d in zip(x, k1, k2, k3, k4))
    return x1, (k1, k2, k3, k4)


def rk4_dense(x0, ks, h, theta, i):
    """Component ``i`` of RK4's cubic continuous extension at fraction ``theta``
    of the step."""
    k1, k2, k3, k4 = (k[i] for k in ks)
    t2, t3 = theta * theta, theta * theta * theta
    b1 = theta - 1.5 * t2 + (2. / 3.) * t3
    b23 = t2 - (2. / 3.) * t3
    b4 = -0.5 * t2 + (2. / 3.) * t3
    return x0[i] + h * (b1 * k1 + b23 * (k2 + k3) + b4 * k4)


_STEPPERS = {"midpoint": step_midpoint, "rk4": step_rk4}  # Runge-Kutta in (v, w)


def _safe_ratio(num, den):
    ok = den != 0.
    return jnp.where(ok, num / jnp.where(ok, den, 1.), 0.)


# ----------------------------------------------------------------------------
# free flight over (per-neuron) durations h: integrate, detect, locate
# ----------------------------------------------------------------------------
def _flight_vw(v, w, drive, h, c, method):
    """Integrates (v, w) over h; returns (v1, w1, crossed, theta, w_cross)."""
    x0 = (v, w)
    (v1, w1), ks = _STEPPERS[method](lambda x: vw_field(x[0], x[1], drive, c), x0, h)
    crossed = v1 > c.v_spike
    # used where crossed, where v1 > v_spike >= v
    theta = jnp.clip((c.v_spike - v) / (v1 - v), 0., 1.)
    w_cross = w + theta * (_clamp_w(w1) - w)
    if method == "rk4" and not _all(c.has_exp):
        # without the exponential term v is smooth: its cubic locates the crossing
        theta_if, w_if = _locate_crossing(x0, ks, h, c.v_spike - v, v1 - v, c.v_spike, refinements=3)
        theta = jnp.where(c.has_exp, theta, theta_if)
        w_cross = jnp.where(c.has_exp, w_cross, w_if)
    return jnp.maximum(v1, -STATE_BOUND), _clamp_w(w1), crossed, theta, w_cross


def _static(x):
    """``x`` as a NumPy array when it is known at trace time, else None."""
    try:
        return np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return None


def _locate_crossing(x0, ks, h, gap0, gap1, level, refinements):
    """Fraction of an RK4 step at which component 0 reaches ``level`` and
    component 1 there: the linear guess ``gap0/gap1`` (``gap0``: level minus
    the start, ``gap1``: the end minus the start), refined on the cubic dense
    output with the chord's slope (no derivative, one division)."""
    inv = _safe_ratio(1., gap1)
    theta = jnp.clip(gap0 * inv, 0., 1.)
    for _ in range(refinements):
        theta = jnp.clip(theta - (rk4_dense(x0, ks, h, theta, 0) - level) * inv, 0., 1.)
    return theta, rk4_dense(x0, ks, h, theta, 1)


def _flight_pq(v, w, drive, h, c):
    """Integrates (P, q) from (v, w) over h with RK4; the crossing of P_peak
    is located on the cubic dense output (no extra field evaluations).
    Returns (P1, q1, crossed, theta, q at the crossing, the start decoded)."""
    x0, decoded = to_pq(v, w, c)
    P, q = x0
    field = lambda x: pq_field(x[0], x[1], drive, c)
    (P1, q1), ks = step_rk4(field, x0, h, k1=pq_field(P, q, drive, c, decoded))
    # P is nearly linear in time near the peak: one refinement is as accurate as Newton's method
    theta, q_cross = _locate_crossing(x0, ks, h, c.p_peak - P, P1 - P, c.p_peak, refinements=1)
    return P1, q1, P1 < c.p_peak, theta, q_cross, decoded


def check_current_shape(j, shape):
    """Raises (at trace time) unless ``j`` broadcasts to ``shape`` without
    enlarging it, so a transposed or mis-sized current never broadcasts silently."""
    j_shape = tuple(jnp.shape(j))
    try:
        ok = np.broadcast_shapes(j_shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"input current j has shape {j_shape}; expected (batch_size, n_units) = {tuple(shape)} "
                         f"or a shape that broadcasts to it (e.g. a scalar or (n_units,))")


def _drive(j, c):
    """v_rest + resist_m j (mV), the input as the fields take it (j bounded)."""
    return c.v_rest + c.resist_m * jnp.clip(j, -STATE_BOUND, STATE_BOUND)


def _relax_w(w, r, c):
    """w after r ms with v held at v_reset (closed form)."""
    return c.w_refract + (w - c.w_refract) * jnp.exp(-r * c.inv_tau_w)


def _blend(s, a, b):
    """``a`` where ``s == 1``, ``b`` where ``s == 0`` (``s`` a 0./1. array),
    exact for finite ``a`` and ``b``. XLA:CPU runs this arithmetic form
    markedly faster than ``jnp.where`` in the memory-bound output loops,
    and it is ngc-learn's own spelling of the reset."""
    return a * s + b * (1. - s)


def _spike_times(state, s, t, crossing_time, track_times):
    """(tols, t_spike) at t from the 0./1. spike array ``s``."""
    tols = (1. - s) * state.tols + s * t
    t_spike = _blend(s, crossing_time(), state.t_spike) if track_times else state.t_spike
    return tols, t_spike


def _clamped_share(ref_left, dt):
    """Refractory time served at the start of the step (ms)."""
    return jnp.clip(ref_left, 0., dt)


def _serve_refractory(v, w, ref_left, dt, c):
    """Clamped share of the step at its start: (r_a, v, w) with v held at
    v_reset and w relaxed over r_a."""
    r_a = _clamped_share(ref_left, dt)
    return r_a, jnp.where(r_a > 0., c.v_reset, v), _relax_w(w, r_a, c)


def _euler_flight(v, w, j, ref_left, exp_v, dt, c, refractory):
    """ngc-learn's forward Euler update of (v, w) over the free share of the
    step (before the reset), bounded so that the arithmetic reset stays finite."""
    h_free = dt
    if refractory:
        r_a, v, w = _serve_refractory(v, w, ref_left, dt, c)
        exp_v = _exp_of(v, c)
        h_free = dt - r_a
        j = jnp.where(h_free > 0., j, 0.)  # a neuron clamped for the whole step ignores its input
    # ngc-learn's expression, operation for operation
    dv = (-(v - c.v_rest) + c.delta * exp_v - c.resist_m * w + c.resist_m * j) * c.inv_tau_m
    dw = (-w + (v - c.v_rest) * c.a) * c.inv_tau_w
    return jnp.clip(v + dv * h_free, -STATE_BOUND, STATE_BOUND), _clamp_w(w + dw * h_free)


def _exp_of(v, c):
    """exp((v - intrinsic_mem_thr)/v_sharpness) as ngc-learn computes it (the
    state is within bounds, so only the exponent cap is added)."""
    return jnp.exp(jnp.minimum((v - c.v_t) / c.delta_safe, EXP_CAP))


def _advance_euler(state, j, t, dt, c, refractory, track_times):
    """ngc-learn's forward Euler step, the reset at the end of the step."""
    # the exponential in a loop of its own before the branch, which both of the branch's loops read (~4% faster)
    v1, w1 = _materialized_pair(_euler_flight, (state.v, state.w, j, state.ref_left, _exp_of(state.v, c)), dt, c,
                                refractory, pack=False)
    s = (v1 > c.v_spike).astype(v1.dtype)
    v0, r_a, h_free, ref_left = state.v, 0., dt, state.ref_left
    if refractory:
        r_a = _clamped_share(ref_left, dt)
        v0, h_free = jnp.where(r_a > 0., c.v_reset, v0), dt - r_a
        ref_left = _blend(s, c.refract_time, jnp.maximum(ref_left - dt, 0.))
        v1 = jnp.where(ref_left > 0., c.v_reset, v1)  # exactly v_reset while clamped
    # linear interpolation where s = 1 (then v1 > v0); the denominator is 1 elsewhere
    crossing = lambda: (t - dt) + r_a + jnp.clip((c.v_spike - v0) / _blend(s, v1 - v0, 1.), 0., 1.) * h_free
    tols, t_spike = _spike_times(state, s, t, crossing, track_times)
    return AdExState(v=_blend(s, c.v_reset, v1), w=_clamp_w(_blend(s, w1 + c.b, w1)),
                     ref_left=ref_left, s=s, tols=tols, t_spike=t_spike)


def _flight(v, w, j, ref_left, dt, c, method, refractory):
    """The free flight of every neuron over its share of the step: returns
    ``(v1, w1)`` at the end of the step, or, where the neuron crossed,
    ``(encoded crossing fraction, w after the reset and the refractory
    period served inside the step)``."""
    drive = _drive(j, c)
    h = dt
    if refractory:
        r_a, v, w = _serve_refractory(v, w, ref_left, dt, c)
        h = dt - r_a
    if method == "precise":
        P1, q1, crossed, theta, q_cross, start = _flight_pq(v, w, drive, h, c)
        crossed = crossed & (h > 0.)  # a reset beyond the capped peak must not fire while clamped
        v1, w1 = from_pq(P1, q1, c, start)
        w_cross = q_cross + c.kappa * c.psi_peak
    else:
        v1, w1, crossed, theta, w_cross = _flight_vw(v, w, drive, h, c, method)
    w_r = w_cross + c.b
    if refractory:
        w_r = _relax_w(w_r, jnp.minimum(c.refract_time, h * (1. - theta)), c)
    return jnp.where(crossed, _encode_theta(theta, c), v1), jnp.where(crossed, _clamp_w(w_r), w1)


def _encode_theta(theta, c):
    # above v_spike, so a crossing is told from a potential; relative resolution ~1e-7 of the step
    return c.v_spike + (1. + theta) * c.theta_scale


def _decode_theta(v1, c):
    return (v1 - c.v_spike) * c.inv_theta_scale - 1.


def _materialized_pair(flight, args, *params, pack=True):
    """``flight(*args, *params)``, a pair of arrays, computed in one pass.

    Several of the step's outputs derive from the flight; XLA:CPU cannot fuse a loop
    with several outputs, so it would re-derive the flight (for a Runge-Kutta
    step: every stage) in each consumer. Packing the pair into one complex
    array gives the flight a single output, and computing it in a branch of a
    conditional (both branches the same) makes XLA keep that array instead of
    fusing it into each consumer. A flight as cheap as Euler's is better
    returned unpacked (``pack=False``): the branch then computes each array
    in its own loop, and the consumers still only read them. Other backends
    fuse multi-output loops themselves and take the plain path."""
    shape = jnp.shape(args[0])
    args = tuple(jnp.broadcast_to(x, shape) for x in args)
    if jax.default_backend() != "cpu":
        return flight(*args, *params)
    branch = (lambda *a: jax.lax.complex(*flight(*a, *params))) if pack else (lambda *a: flight(*a, *params))
    out = jax.lax.cond(jnp.isfinite(params[0]), branch, branch, *args)
    return (jnp.real(out), jnp.imag(out)) if pack else out


def advance(state: AdExState, j, t, dt, c: Coefficients, method: str, refractory: bool,
            track_times: bool = True) -> AdExState:
    """Advances every neuron from ``t - dt`` to ``t``.

    For every integrator but "euler" a neuron's flight starts once its
    refractory time is served (v held at v_reset, w relaxing in closed form),
    ends at the crossing where it spikes, and the neuron is reset there; the
    rest of the step (after the refractory period) is integrated from the
    reset with one explicit step in (v, w) (see :func:`_remainder`). Every
    neuron pays for one flight and that step, whether or not it spikes.

    Args:
        state: :class:`AdExState` at time ``t - dt``

        j: input current, broadcastable to the state's shape

        t: time at the end of the step (ms)

        dt: step size (ms)

        c: :class:`Coefficients` of the population

        method: one of :data:`METHODS`

        refractory: whether any neuron has ``refract_time > 0`` (static)

        track_times: update ``t_spike`` with the interpolated crossing time
            (static; costs memory traffic that matters only for "euler")

    Returns:
        the :class:`AdExState` at time ``t``; at most one spike per neuron and step
    """
    check_current_shape(j, state.v.shape)
    if method == "euler":
        return _advance_euler(state, j, t, dt, c, refractory, track_times)
    ref_left = state.ref_left
    v1, w1 = _materialized_pair(_flight, (state.v, state.w, j, ref_left), dt, c, method, refractory)
    crossed = v1 > c.v_spike
    s = crossed.astype(v1.dtype)
    r_a = _clamped_share(ref_left, dt) if refractory else 0.
    t_cross = r_a + _decode_theta(v1, c) * (dt - r_a)  # from the step start, where s = 1
    rest = dt - t_cross
    # computed in the loops that write v and w (~4% faster than a pass of its own)
    v, w = _remainder(v1, w1, crossed, j, rest, dt, c, refractory, method)
    if refractory:
        ref_left = _blend(s, jnp.maximum(c.refract_time - rest, 0.), jnp.maximum(ref_left - dt, 0.))
        v = jnp.where(ref_left > 0., c.v_reset, v)  # exactly v_reset while clamped
    tols, t_spike = _spike_times(state, s, t, lambda: (t - dt) + t_cross, track_times)
    return AdExState(v=v, w=w, ref_left=ref_left, s=s, tols=tols, t_spike=t_spike)


def _remainder(v1, w1, crossed, j, rest, dt, c, refractory, method):
    """Where the flight ``crossed`` (``v1`` encodes the crossing, ``w1`` is w
    after the reset): (v, w) at the end of the step, integrated from v_reset
    over the ``rest`` of the step after the refractory period; elsewhere
    ``(v1, w1)``. A second-order Taylor step with the Jacobian at v_reset,
    where the exponential term is a constant of the neuron (error below
    1e-3 mV after a spike, no exponential to evaluate), or, for "midpoint"
    and "rk4" where every neuron has the exponential term, a forward Euler
    step: its error (~1e-3 mV) is far below what the upswing costs their
    spike times (~0.2 ms, about 1 mV at the reset). Without the exponential
    term their spike times are accurate, and so must be the step after a spike."""
    h = jnp.clip(rest - c.refract_time if refractory else rest, 0., dt)
    h = jnp.where(crossed, h, 0.)
    dv = (_drive(j, c) - c.v_reset + c.exp_reset - c.resist_m * w1) * c.inv_tau_m
    dw = (c.w_refract - w1) * c.inv_tau_w
    if method == "precise" or not _all(c.has_exp):
        dv, dw = (dv + (0.5 * h) * (c.jac_vv * dv - c.resist_m * c.inv_tau_m * dw),
                  dw + (0.5 * h) * (c.a * dv - dw) * c.inv_tau_w)
    # compare-and-select bounds: where extreme parameters overflow the Jacobian's product
    # (inf, or NaN from inf * 0), the step still ends at a finite state
    bound = STATE_BOUND / dt
    v = c.v_reset + h * _upper(_lower(dv, -bound), bound)
    w = w1 + h * _upper(_lower(dw, -bound), bound)
    return jnp.where(crossed, _clamp_v(v, c), v1), jnp.where(crossed, _clamp_w(w), w1)
