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

The transformed variables (``D = v_sharpness``, ``vT = intrinsic_mem_thr``)::

    m = exp(-max(v - vT, 0)/D)              (1 below vT, -> 0 at the spike)
    P = vT + D - v   for v <= vT,   P = D m   above vT
    q = w - kappa psi(m),  psi(m) = m ln m - m + 1,  kappa = a D tau_m/tau_w

give ``tau_m dP/dt = -(m G + D exp(min(1 - P/D, 0)))`` and
``tau_w dq/dt = -w + a (min(v, vT) - v_rest) + a m ln(m) G`` with
``G = -(v - v_rest) - resist_m (w - j)``: near the spike ``P`` falls linearly to
``P_peak = D exp(-(thr - vT)/D)`` and every term is continuous. With ``D = 0``
they reduce to ``P = vT - v``, ``q = w`` (plain integrate-and-fire).

Overflow safety: inside every right-hand side v is clamped to the spike
potential (as NEST does) and to a finite floor, w to a finite box, and the
exponent to ``EXP_CAP``; states leaving a step are clamped the same way and
resets select between finite values. No finite input can produce NaN or inf;
a NaN input current only affects the neuron it is fed to.

Cost: every integrator but "euler" integrates each neuron once per step
(a spike ends the flight at the crossing; the next step starts there, see
:func:`advance`), and on XLA:CPU the flight is one fused loop computed once
(:func:`_materialized_pair`) with float32 exp/log that fuse into it
(:func:`fast_exp`, :func:`fast_log`).
"""
from typing import NamedTuple

import numpy as np
import jax
import jax.numpy as jnp

#: cap on (v - intrinsic_mem_thr)/v_sharpness inside exp(); exp(60) ~ 1e26
#: keeps float32 finite and shifts spike times by ~tau_m * exp(-60)
EXP_CAP = 60.
#: |v| and |w| never exceed this (mV / pA); reached only by diverging runs
STATE_BOUND = 1e9

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
    a_gap: jnp.ndarray        # a (intrinsic_mem_thr - v_rest)
    p_peak: jnp.ndarray       # P at the spike
    psi_peak: jnp.ndarray     # psi(m) at the spike
    p_reset: jnp.ndarray      # P at v_reset
    psi_reset: jnp.ndarray    # psi(m) at v_reset
    theta_scale: jnp.ndarray  # max(1, |v_spike|): crossing fractions are packed above v_spike


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
    log_m_reset = np.where(has_exp, -np.maximum(p["v_reset"] - p["intrinsic_mem_thr"], 0.) / d_safe, 0.)
    m_reset = np.exp(log_m_reset)
    p_below_reset = p["intrinsic_mem_thr"] + delta - p["v_reset"]
    np_dtype = np.dtype(jnp.dtype(dtype).name)
    # reciprocals rounded in the working precision, as ngc-learn's cell computes them (bitwise Euler match)
    inv_tau_m, inv_tau_w = (np_dtype.type(1.) / p[k].astype(np_dtype) for k in ("tau_m", "tau_w"))
    out = dict(
        inv_tau_m=inv_tau_m, inv_tau_w=inv_tau_w, resist_m=p["resist_m"],
        delta=delta, delta_safe=d_safe, inv_delta=1. / d_safe, has_exp=has_exp, v_t=p["intrinsic_mem_thr"],
        v_spike=v_spike, v_rest=p["v_rest"], v_reset=p["v_reset"], a=p["a"], b=p["b"],
        refract_time=p["refract_time"], w_refract=p["a"] * (p["v_reset"] - p["v_rest"]),
        kappa=p["a"] * delta * p["tau_m"] / p["tau_w"], a_gap=p["a"] * (p["intrinsic_mem_thr"] - p["v_rest"]),
        p_peak=np.where(has_exp, delta * m_peak, 0.),
        psi_peak=_psi_of_log(m_peak, log_m_peak),
        p_reset=np.where(m_reset < 1., delta * m_reset, p_below_reset),
        psi_reset=_psi_of_log(m_reset, log_m_reset),
        theta_scale=np.maximum(1., np.abs(v_spike)),
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


def fast_exp(x, coarse=False):
    """exp(x) for the Runge-Kutta fields, x <= EXP_CAP.

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


def fast_log(x):
    """ln(x) for x in (0, 1] (the transformed potential of "precise").

    In float32 Cephes' logf (exponent from the bits, mantissa in
    [sqrt(1/2), sqrt(2)), a degree-8 polynomial in Estrin's scheme; at most
    ~1 ulp off on the normal floats), which XLA:CPU runs faster than its own
    log. Other dtypes use ``jnp.log``."""
    if jnp.result_type(x) != jnp.float32:
        return jnp.log(x)
    bits = jax.lax.bitcast_convert_type(x, jnp.int32)
    mant = jax.lax.bitcast_convert_type((bits & 0x007FFFFF) | 0x3F800000, jnp.float32)  # [1, 2)
    e = jax.lax.shift_right_arithmetic(bits, 23).astype(jnp.float32) - 127.
    big = mant > 1.41421356
    f = jnp.where(big, 0.5 * mant, mant) - 1.
    e = jnp.where(big, e + 1., e)
    f2 = f * f
    f4 = f2 * f2
    p = ((3.3333331174e-1 - 2.4999993993e-1 * f) + f2 * (2.0000714765e-1 - 1.6668057665e-1 * f)
         + f4 * ((1.4249322787e-1 - 1.2420140846e-1 * f) + f2 * (1.1676998740e-1 - 1.1514610310e-1 * f)
                 + f4 * 7.0376836292e-2))
    return (f + (f * f2 * p - 2.12194440e-4 * e - 0.5 * f2)) + 0.693359375 * e


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


def _clamp_p(P, c: Coefficients):
    """P between the spike (P_peak) and the floor v = -STATE_BOUND."""
    return _upper(_lower(P, c.p_peak), c.v_t + c.delta + STATE_BOUND)


def _decode_p(P, c: Coefficients, upper=_upper):
    """(m, ln m, min(D - P, 0), v) from a clamped transformed potential P."""
    m = _upper(P * c.inv_delta, 1.)
    if not _all(c.has_exp):
        m = jnp.where(c.has_exp, m, 1.)
    log_m = fast_log(m)
    below = upper(c.delta - P, 0.)  # v - vT where v < vT, else 0
    return m, log_m, below, c.v_t + below - c.delta * log_m


def to_pq(v, w, c: Coefficients):
    """(v, w) -> transformed (P, q)."""
    v = _clamp_v(v, c)
    log_m = jnp.where(c.has_exp, -jnp.maximum(v - c.v_t, 0.) * c.inv_delta, 0.)
    m = fast_exp(log_m)
    P = jnp.where(log_m < 0., c.delta * m, c.v_t + c.delta - v)
    return P, w - c.kappa * _psi_of_log(m, log_m)


def from_pq(P, q, c: Coefficients):
    """Transformed (P, q) -> (v, w); a NaN stays NaN (NaN-propagating clamps)."""
    m, log_m, _, v = _decode_p(jnp.clip(P, c.p_peak, c.v_t + c.delta + STATE_BOUND), c, jnp.minimum)
    return v, _clamp_w(q + c.kappa * _psi_of_log(m, log_m))


def pq_field(P, q, drive, c: Coefficients):
    """(dP/dt, dq/dt) in ms^-1 under ``drive = v_rest + resist_m j``; smooth
    through the spike upswing."""
    P = _clamp_p(P, c)
    m, log_m, below, v = _decode_p(P, c)
    m_log_m = m * log_m
    w = _upper(_lower(q + c.kappa * (m_log_m - m + 1.), -STATE_BOUND), STATE_BOUND)
    g = drive - v - c.resist_m * w
    exp_term = c.delta * fast_exp(_upper(1. - P * c.inv_delta, 0.))
    dP = -(m * g + exp_term) * c.inv_tau_m
    dq = (c.a * (below + m_log_m * g) + c.a_gap - w) * c.inv_tau_w
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


def step_rk4(f, x, h):
    """Classical fourth-order Runge-Kutta. Returns (x1, stages)."""
    k1 = f(x)
    k2 = f(_axpy(x, 0.5 * h, k1))
    k3 = f(_axpy(x, 0.5 * h, k2))
    k4 = f(_axpy(x, h, k3))
    x1 = tuple(xi + (h / 6.) * (a + 2. * b + 2. * cc + d) for xi, a, b, cc, d in zip(x, k1, k2, k3, k4))
    return x1, (k1, k2, k3, k4)


def rk4_dense(x0, ks, h, theta, i):
    """Component ``i`` of RK4's cubic continuous extension at fraction ``theta``
    of the step, and its time derivative."""
    k1, k2, k3, k4 = (k[i] for k in ks)
    t2, t3 = theta * theta, theta * theta * theta
    b1 = theta - 1.5 * t2 + (2. / 3.) * t3
    b23 = t2 - (2. / 3.) * t3
    b4 = -0.5 * t2 + (2. / 3.) * t3
    value = x0[i] + h * (b1 * k1 + b23 * (k2 + k3) + b4 * k4)
    slope = (1. - 3. * theta + 2. * t2) * k1 + (2. * theta - 2. * t2) * (k2 + k3) + (2. * t2 - theta) * k4
    return value, slope


_STEPPERS = {"midpoint": step_midpoint, "rk4": step_rk4}  # Runge-Kutta in (v, w)


def _safe_ratio(num, den):
    ok = den != 0.
    return jnp.where(ok, num / jnp.where(ok, den, 1.), 0.)


# ----------------------------------------------------------------------------
# free flight over (per-neuron) durations h: integrate, detect, locate
# ----------------------------------------------------------------------------
def _flight_vw(v, w, j, h, c, method):
    """Integrates (v, w) over h; returns (v1, w1, crossed, theta, w_cross)."""
    x0 = (v, w)
    drive = c.v_rest + c.resist_m * j
    (v1, w1), ks = _STEPPERS[method](lambda x: vw_field(x[0], x[1], drive, c), x0, h)
    crossed = v1 > c.v_spike
    # used where crossed, where v1 > v_spike >= v
    theta = jnp.clip((c.v_spike - v) / (v1 - v), 0., 1.)
    w_cross = w + theta * (_clamp_w(w1) - w)
    if method == "rk4" and not _all(c.has_exp):
        # without the exponential term v is smooth: its cubic locates the crossing
        theta_if, w_if = _locate_crossing(x0, ks, h, c.v_spike - v, v1 - v, c.v_spike)
        theta = jnp.where(c.has_exp, theta, theta_if)
        w_cross = jnp.where(c.has_exp, w_cross, w_if)
    return jnp.maximum(v1, -STATE_BOUND), _clamp_w(w1), crossed, theta, w_cross


def _static(x):
    """``x`` as a NumPy array when it is known at trace time, else None."""
    try:
        return np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return None


def _locate_crossing(x0, ks, h, gap0, gap1, level, newton=2):
    """Fraction of an RK4 step at which component 0 reaches ``level`` (linear
    guess refined by ``newton`` Newton steps on the cubic dense output) and
    component 1 there."""
    theta = jnp.clip(_safe_ratio(gap0, gap1), 0., 1.)
    for _ in range(newton):
        value, slope = rk4_dense(x0, ks, h, theta, 0)
        theta = jnp.clip(theta - _safe_ratio(value - level, h * slope), 0., 1.)
    return theta, rk4_dense(x0, ks, h, theta, 1)[0]


def _flight_pq(P, q, drive, h, c):
    """Integrates (P, q) over h with RK4; the crossing of P_peak is located on
    the cubic dense output (no extra field evaluations)."""
    x0 = (P, q)
    field = lambda x: pq_field(x[0], x[1], drive, c)
    (P1, q1), ks = step_rk4(field, x0, h)
    # P is nearly linear in time near the peak: one Newton step from the linear guess is as accurate as two
    theta, q_cross = _locate_crossing(x0, ks, h, P - c.p_peak, P - P1, c.p_peak, newton=1)
    return P1, q1, P1 < c.p_peak, theta, q_cross


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


def _free_time(ref_left, dt):
    """Duration of a step's flight (ms): longer than dt after a spike in the
    previous step (ref_left < 0), 0 while clamped for the whole step."""
    return jnp.maximum(dt - ref_left, 0.)


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


def _flight(v, w, j, off, dt, c, method, refractory):
    """The free flight of every neuron over its share of the step (everything
    but the bookkeeping): returns ``(v1, w1)`` at the end of the step, or,
    where the neuron crossed, ``(encoded crossing fraction, w after the reset)``."""
    j = jnp.clip(j, -STATE_BOUND, STATE_BOUND)
    if refractory:
        _, v, w = _serve_refractory(v, w, off, dt, c)
    h = _free_time(off, dt)
    if method == "precise":
        P, q = to_pq(v, w, c)
        P1, q1, crossed, theta, q_cross = _flight_pq(P, q, c.v_rest + c.resist_m * j, h, c)
        crossed = crossed & (h > 0.)  # a reset beyond the capped peak must not fire while clamped
        v1, w1 = from_pq(P1, q1, c)
        w_cross = q_cross + c.kappa * c.psi_peak
    else:
        v1, w1, crossed, theta, w_cross = _flight_vw(v, w, j, h, c, method)
    w_r = w_cross + c.b
    if refractory:
        w_r = _relax_w(w_r, jnp.minimum(c.refract_time, dt - (off + theta * h)), c)
    return jnp.where(crossed, _encode_theta(theta, c), v1), jnp.where(crossed, _clamp_w(w_r), w1)


def _encode_theta(theta, c):
    # above v_spike, so a crossing is told from a potential; relative resolution ~1e-7 of the step
    return c.v_spike + (1. + theta) * c.theta_scale


def _decode_theta(v1, c):
    return (v1 - c.v_spike) / c.theta_scale - 1.


def _materialized_pair(flight, args, *params, pack=True):
    """``flight(*args, *params)``, a pair of arrays, computed in one pass.

    The step's outputs all derive from the flight; XLA:CPU cannot fuse a loop
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

    For every integrator but "euler" a neuron's state starts at
    ``t - dt + ref_left``: later while it is refractory (``ref_left > 0``, v
    held at v_reset, w relaxing in closed form), earlier (``ref_left < 0``)
    when it spiked in the previous step. A spike resets the neuron at the
    crossing and the flight ends there: the rest of the step is integrated,
    at full accuracy, by the next step's flight (``ref_left = -rest``), so a
    step costs one flight whether or not the neuron spikes.

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
        the :class:`AdExState` at time ``t`` (at the crossing for a neuron that
        spiked in the step); at most one spike per neuron and step
    """
    check_current_shape(j, state.v.shape)
    if method == "euler":
        return _advance_euler(state, j, t, dt, c, refractory, track_times)
    off = state.ref_left
    v1, w1 = _materialized_pair(_flight, (state.v, state.w, j, off), dt, c, method, refractory)
    s = (v1 > c.v_spike).astype(v1.dtype)
    # the crossing, from the step start (negative when the flight began in the previous step)
    t_cross = off + _decode_theta(v1, c) * _free_time(off, dt)
    rest = dt - t_cross
    if refractory:
        off_new = _blend(s, c.refract_time - rest, jnp.maximum(off - dt, 0.))
    else:
        off_new = -rest * s
    # more than one spike per step cannot be emitted: a neuron firing faster drops the excess lag
    off_new = jnp.maximum(off_new, -dt)
    tols, t_spike = _spike_times(state, s, t, lambda: (t - dt) + t_cross, track_times)
    reset = jnp.maximum(s, (off_new > 0.).astype(s.dtype)) if refractory else s  # v exactly v_reset while clamped
    return AdExState(v=_blend(reset, c.v_reset, v1), w=w1, ref_left=off_new, s=s, tols=tols, t_spike=t_spike)
