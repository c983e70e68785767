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
* ``"precise"``: a Taylor series in time of the exact solution, in variables
  in which the spike upswing is smooth, computed from the equations'
  recurrences (one exponential and one logarithm per step); the crossing is
  solved on the series itself. Spike times agree with an exact solution to
  about 2e-4 ms at dt = 0.1 ms in float32 (order 4), 6e-5 ms in float64 (order 6).

Every integrator but "euler" resets a neuron at its crossing and integrates
the rest of the step from the reset (one explicit step in (v, w), after the
refractory period), so the compartments hold the state at the end of every step.

The series of "precise" (``D = v_sharpness``, ``vT = intrinsic_mem_thr``,
``E0 = exp((v0 - vT)/D)`` at the start ``v0`` of the step)::

    rho = exp(-(v - v0)/D)      y = (v - v0)/D = -ln rho      u = resist_m w / D
    tau_m drho/dt = -(E0 + rho (drive - v - resist_m w)/D),   drive = v_rest + resist_m j

The exponential term becomes the constant ``E0``: at the spike (v -> inf) ``rho``
falls almost linearly to 0, where v's own series diverges. The Taylor
coefficients of rho, y, u follow from products of series (rho y' = -rho' and
the equations); v at the end of the step is ``v0 - D ln rho``, the crossing the
root of ``rho(t) = exp(-(thr - v0)/D)`` (Newton's method from the tangent). The
series converges within the distance ``~tau_m/E0`` to the upswing's singularity
in complex time, and rho's within the time in which the input moves v by D: a
step is expanded over at most ``SERIES_REACH`` times the shorter, which holds
the crossing. w's log singularity there is carried by
``psi(rho) = rho ln rho - rho + 1``, summed exactly (``w = q + a_psi psi(rho)``
with ``q`` a fast-converging series). Away from the singularity (the step
shorter than ``POLE_NEAR`` times that distance) v is summed from y, whose series
converges fast there whatever v's change. Below ``vT - U_DEPTH D``, and where
the input moves v by more than ``SERIES_SPAN D`` and more than the exponential
term does in a step, that term (below ``D e^-U_DEPTH``, or small next to the
input) is dropped and ``D_FAR`` replaces ``D``. With ``D = 0`` (plain
integrate-and-fire) the crossing is that of ``v_spike`` by v; with ``D > 0`` a
neuron that gets there in such a step (v is capped at ``v_spike``) spikes at the
start of the next.

Overflow safety: inside every Runge-Kutta right-hand side v is clamped to the
spike potential (as NEST does) and to a finite floor, w to a finite box, and
the exponent to ``EXP_CAP``; states leaving a step are clamped the same way and
resets select between finite values; a series that overflows (time constants
far shorter than the step) leaves the neuron's state unchanged for that step.
No finite input can produce NaN or inf; a NaN input current only affects the
neuron it is fed to.

Cost: every integrator but "euler" integrates each neuron once per step,
plus one explicit step over the rest of the step (see :func:`advance`); on
XLA:CPU the flight is one fused loop computed once (:func:`_materialized_pair`)
with float32 exp/log that fuse into it (:func:`fast_exp`, :func:`fast_log`);
the exponential at the start comes from a loop of its own.
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
#: "precise" drops the exponential term of a step that starts below
#: intrinsic_mem_thr - U_DEPTH v_sharpness (where it is below 2e-9 v_sharpness)
U_DEPTH = 20.
#: order of the Taylor series of "precise" per dtype: in float32 its spike-time error (~2e-4 ms at
#: dt = 0.1 ms) is of the order of the rounding's (~1e-4 ms); float64 gets the accuracy it pays for
SERIES_ORDER = {"float32": 4, "float64": 6}
#: "precise" expands a step over at most this many times the distance to the singularity of the
#: upswing, beyond which the series diverges; the crossing lies within ~1.1 times that distance
SERIES_REACH = 2.
#: a step whose input moves v by more than this many v_sharpness (and more than the exponential
#: term does) drops the exponential term
SERIES_SPAN = 1.
#: the scale (mV) of rho where the exponential term is dropped: v moves by less than this in a step
D_FAR = 1000.
#: where the step is at least this fraction of that distance, v is summed from rho and w carries
#: the psi transform; elsewhere the series of v and w converge fast by themselves (and the float32
#: logarithm would only add rounding)
POLE_NEAR = 0.05

#: what each parameter acts as in the arithmetic (the state box bounds |v| and |w| by STATE_BOUND, and a
#: trajectory that reaches it has left every physical regime): potentials, gains and v_sharpness beyond
#: STATE_BOUND act as STATE_BOUND; thr beyond twice that is never (or always) reached, as beyond any bound;
#: time constants below 1e-9 ms act as 1e-9 ms; refract_time is taken as it is
PARAM_BOX = {"thr": (-2. * STATE_BOUND, 2. * STATE_BOUND), "tau_m": (1e-9, np.inf), "tau_w": (1e-9, np.inf),
             "refract_time": (0., np.inf)}

METHODS = ("euler", "midpoint", "heun", "ralston", "rk4", "precise")
#: accepted spellings of each integrator (any case): ngc-learn's names map to the method of
#: the same order, ngc-learn's tableau included ("heun", "ralston")
METHOD_ALIASES = {"euler": "euler", "rk1": "euler", "midpoint": "midpoint", "rk2": "midpoint",
                  "heun": "heun", "rk2_heun": "heun", "ralston": "ralston", "rk2_ralston": "ralston",
                  "rk4": "rk4", "precise": "precise"}
#: ngc-learn's integer code of each integrator (its ``intgFlag``; "precise" has none there)
INTEGRATOR_CODES = {"euler": 0, "midpoint": 1, "heun": 2, "ralston": 3, "rk4": 4, "precise": 5}


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
    v_top: jnp.ndarray        # max(v_spike, v_reset): v never ends a step above it
    v_rest: jnp.ndarray
    v_reset: jnp.ndarray
    a: jnp.ndarray
    b: jnp.ndarray
    refract_time: jnp.ndarray
    w_refract: jnp.ndarray    # w relaxes to a (v_reset - v_rest) while clamped
    resist_u: jnp.ndarray     # resist_m, 1 where it is 0: the scale of w in "precise"'s series
    inv_resist_m: jnp.ndarray # 1/resist_u
    couple_u: jnp.ndarray     # resist_m/resist_u: 1, or 0 where the input is disconnected
    a_r: jnp.ndarray          # a resist_u
    x_far: jnp.ndarray        # -U_DEPTH where v_sharpness > 0, else +inf: the exponential term is dropped below
    d_far: jnp.ndarray        # max(v_sharpness, D_FAR): the scale of rho where the exponential term is dropped
    inv_d_far: jnp.ndarray
    x_spike: jnp.ndarray      # (v_spike - intrinsic_mem_thr)/v_sharpness in [-U_DEPTH - 1, EXP_CAP] (0 where D = 0)
    rho_spike: jnp.ndarray    # exp(-x_spike) where v_sharpness > 0, else 0
    smooth_crossing: jnp.ndarray  # v is smooth up to the spike potential (v_sharpness = 0 or thr <= intrinsic_mem_thr)
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
    """Potential (mV) at which a spike is registered: ``thr``; in the
    integrate-and-fire limit ``v_sharpness = 0``, where the exponential term
    is a wall at ``intrinsic_mem_thr``, the lower of the two."""
    return np.where(np.asarray(v_sharpness) > 0, thr, np.minimum(thr, intrinsic_mem_thr))


def coefficients(params: AdExParams, dtype=jnp.float32) -> Coefficients:
    """Derives the step's constants from validated parameters (in float64,
    then cast to ``dtype``)."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params._asdict().items()}
    p = {k: np.clip(v, *PARAM_BOX.get(k, (-STATE_BOUND, STATE_BOUND))) for k, v in p.items()}
    delta = p["v_sharpness"]
    has_exp = delta > 0
    d_safe = np.where(has_exp, delta, 1.)
    v_spike = spike_potential(delta, p["intrinsic_mem_thr"], p["thr"])
    # below -U_DEPTH every lane that keeps the exponential term starts above the spike potential
    # (and spikes at once), so the bound only keeps exp(-x_peak) finite
    x_peak = np.clip((p["thr"] - p["intrinsic_mem_thr"]) / d_safe, -U_DEPTH - 1., EXP_CAP)
    resist_u = np.where(p["resist_m"] > 0, p["resist_m"], 1.)
    exp_reset = delta * np.exp(np.minimum((p["v_reset"] - p["intrinsic_mem_thr"]) / d_safe, EXP_CAP))
    np_dtype = np.dtype(jnp.dtype(dtype).name)
    # reciprocals rounded in the working precision, as ngc-learn's cell computes them (bitwise Euler match)
    inv_tau_m, inv_tau_w = (np_dtype.type(1.) / p[k].astype(np_dtype) for k in ("tau_m", "tau_w"))
    out = dict(
        inv_tau_m=inv_tau_m, inv_tau_w=inv_tau_w, resist_m=p["resist_m"],
        delta=delta, delta_safe=d_safe, inv_delta=1. / d_safe, has_exp=has_exp, v_t=p["intrinsic_mem_thr"],
        v_spike=v_spike, v_top=np.maximum(v_spike, p["v_reset"]), v_rest=p["v_rest"], v_reset=p["v_reset"], a=p["a"], b=p["b"],
        refract_time=p["refract_time"], w_refract=p["a"] * (p["v_reset"] - p["v_rest"]),
        resist_u=resist_u, inv_resist_m=1. / resist_u, couple_u=p["resist_m"] / resist_u,
        a_r=p["a"] * resist_u, x_far=np.where(has_exp, -U_DEPTH, np.inf),
        d_far=np.maximum(delta, D_FAR), inv_d_far=1. / np.maximum(delta, D_FAR),
        x_spike=np.where(has_exp, x_peak, 0.), rho_spike=np.where(has_exp, np.exp(-x_peak), 0.),
        smooth_crossing=~has_exp | (p["thr"] <= p["intrinsic_mem_thr"]),
        theta_scale=np.maximum(1., np.abs(v_spike)), inv_theta_scale=1. / np.maximum(1., np.abs(v_spike)),
        exp_reset=exp_reset, jac_vv=(exp_reset / d_safe - 1.) / p["tau_m"],
    )
    return Coefficients(**{k: (jnp.asarray(v) if np.asarray(v).dtype == bool else jnp.asarray(v, dtype=dtype))
                           for k, v in out.items()})


# ----------------------------------------------------------------------------
# vector fields
# ----------------------------------------------------------------------------
def _clamp_w(w):
    return jnp.clip(w, -STATE_BOUND, STATE_BOUND)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def fast_exp(x, coarse=False):
    """exp(x) for x <= EXP_CAP (the Runge-Kutta fields, the exponential term at the start of a series step).

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


def _box(x, lo, hi):
    """x clamped to [lo, hi] by compare-and-select (see :func:`_lower`)."""
    return _upper(_lower(x, lo), hi)


@fast_exp.defjvp
def _fast_exp_jvp(coarse, primals, tangents):
    y = fast_exp(primals[0], coarse)
    return y, y * tangents[0]


@jax.custom_jvp
def fast_log(x):
    """ln(x) for rho at the end of a step of "precise" (a positive normal float).

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


def _any(x):
    """Whether some element of ``x`` may be true (unknown at trace time counts)."""
    known = _static(x)
    return known is None or bool(known.any())


def _exp_term(v, c, coarse):
    """exp((v - intrinsic_mem_thr)/v_sharpness), the exponent capped at ``EXP_CAP``."""
    return fast_exp(_upper((v - c.v_t) * c.inv_delta, EXP_CAP), coarse)


def vw_field(v, w, drive, c: Coefficients, exp_v=None):
    """(dv/dt, dw/dt) in ms^-1 at state (v, w) under ``drive = v_rest +
    resist_m j`` (mV), for the Runge-Kutta integrators (``exp_v``: the
    exponential at v where already known, see :func:`_exp_at_start`).

    v is clamped to the spike potential (NEST's min(V, V_peak)) and to a
    finite floor, w to a finite box and the exponent to ``EXP_CAP``, so any
    stage value of a Runge-Kutta step gives a finite field."""
    v = _box(v, -STATE_BOUND, c.v_spike)
    w = _box(w, -STATE_BOUND, STATE_BOUND)
    if exp_v is None:
        exp_v = _exp_term(v, c, coarse=True)
    exp_term = c.delta * exp_v
    dv = (drive - v + exp_term - c.resist_m * w) * c.inv_tau_m
    dw = (c.a * (v - c.v_rest) - w) * c.inv_tau_w
    return dv, dw


# ----------------------------------------------------------------------------
# explicit Runge-Kutta steps on a pair of arrays
# ----------------------------------------------------------------------------
def _axpy(x, h, k):
    return tuple(xi + h * ki for xi, ki in zip(x, k))


def step_midpoint(f, x, h, k1=None):
    """Explicit midpoint (RK2). Returns (x1, stages)."""
    k1 = f(x) if k1 is None else k1
    k2 = f(_axpy(x, 0.5 * h, k1))
    return _axpy(x, h, k2), (k1, k2)


def _step_rk2(alpha, f, x, h, k1=None):
    """Explicit two-stage, second-order Runge-Kutta with its second stage at
    ``alpha h`` (1/2: midpoint, 1: Heun, 2/3: Ralston). Returns (x1, stages)."""
    k1 = f(x) if k1 is None else k1
    k2 = f(_axpy(x, alpha * h, k1))
    w2 = 0.5 / alpha
    return tuple(xi + h * ((1. - w2) * a + w2 * b) for xi, a, b in zip(x, k1, k2)), (k1, k2)


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


_STEPPERS = {"midpoint": step_midpoint, "heun": partial(_step_rk2, 1.), "ralston": partial(_step_rk2, 2. / 3.),
             "rk4": step_rk4}  # Runge-Kutta in (v, w)


# ----------------------------------------------------------------------------
# quotients and products with finite derivatives
# ----------------------------------------------------------------------------
# jax.grad through a step is finite for every finite state and input. JAX differentiates x/y as
# -x y^-2, which overflows for |y| < ~1e-19, and the zero cotangent of a quotient that is clipped or
# discarded (a step spent refractory, v that does not move, a neuron that does not cross) times that
# inf, or times an inf or NaN the forward pass computed and then discarded, is NaN. A select on the
# denominator would cure it, but it changes how XLA:CPU fuses the step and with it the forward
# rounding (ulp differences; an overflowing series kept in one build and not the other). Instead,
# these functions give the plain expressions derivatives written to stay finite: without
# differentiation each is its expression, and the compiled step is unchanged.
@jax.custom_jvp
def _safe_ratio(num, den):
    """num/den, 0 where den = 0; the derivative (tn - q td)/den, finite where den is tiny."""
    ok = den != 0.
    return jnp.where(ok, num / jnp.where(ok, den, 1.), 0.)


@_safe_ratio.defjvp
def _safe_ratio_jvp(primals, tangents):
    num, den = primals
    out = _safe_ratio(num, den)
    ok = den != 0.
    return out, jnp.where(ok, (tangents[0] - out * tangents[1]) / jnp.where(ok, den, 1.), 0.)


@jax.custom_jvp
def _quotient(num, den):
    """num/den, den never 0 but possibly tiny where the quotient is discarded: the derivative
    (tn - q td)/den, finite wherever q is."""
    return num / den


@_quotient.defjvp
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
def _unit_ratio(num, den):
    """clip(num/den, 0, 1) (a crossing fraction), with a finite derivative for every finite num and den."""
    return jnp.clip(num / den, 0., 1.)


@_unit_ratio.defjvp
def _unit_ratio_jvp(primals, tangents):
    num, den = primals
    q = _not_nan(_unit_ratio(num, den))
    return _unit_jvp(q, 0., tangents[0] - q * tangents[1], den)


@jax.custom_jvp
def _unit_newton(theta, num, den):
    """theta - num/den clamped to [0, 1] (a Newton step on a crossing fraction), with a finite derivative."""
    return jnp.clip(theta - num / den, 0., 1.)


@_unit_newton.defjvp
def _unit_newton_jvp(primals, tangents):
    theta, num, den = primals
    q = _not_nan(_unit_newton(theta, num, den))
    # where 0 < q < 1, num/den = theta - q (up to rounding): finite
    return _unit_jvp(q, tangents[0], (theta - q) * tangents[2] - tangents[1], den)


@jax.custom_jvp
def _scaled(h, x):
    """h * x, where x may overflow to inf (a product that a clamp downstream discards): the derivative
    in h is taken as 0 there instead of NaN (0 * inf) from that clamp's zero cotangent."""
    return h * x


@_scaled.defjvp
def _scaled_jvp(primals, tangents):
    h, x = primals
    return h * x, tangents[0] * jnp.where(jnp.abs(x) < jnp.inf, x, 0.) + h * tangents[1]


# ----------------------------------------------------------------------------
# free flight over (per-neuron) durations h: integrate, detect, locate
# ----------------------------------------------------------------------------
def _flight_vw(v, w, drive, h, exp0, c, method):
    """Integrates (v, w) over h (``exp0``: :func:`_exp_at_start`); returns (v1,
    w1, crossed, theta, w_cross)."""
    x0 = (v, w)
    (v1, w1), ks = _STEPPERS[method](lambda x: vw_field(x[0], x[1], drive, c), x0, h,
                                     vw_field(v, w, drive, c, exp0))
    crossed = v1 > c.v_spike
    # used where crossed, where v1 > v_spike >= v (v1 = v where the step is spent refractory)
    theta = _unit_ratio(c.v_spike - v, v1 - v)
    w_cross = w + theta * (_clamp_w(w1) - w)
    if method == "rk4" and _any(c.smooth_crossing):
        # where v is smooth up to the spike potential, its cubic locates the crossing
        theta_if, w_if = _locate_crossing(x0, ks, h, c.v_spike - v, v1 - v, c.v_spike, refinements=3)
        theta = jnp.where(c.smooth_crossing, theta_if, theta)
        w_cross = jnp.where(c.smooth_crossing, w_if, w_cross)
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


def _horner(coeffs, theta):
    """The polynomial with coefficients ``coeffs`` (constant first) at ``theta``."""
    acc = coeffs[-1]
    for ck in coeffs[-2::-1]:
        acc = acc * theta + ck
    return acc


def _flight_series(v, w, drive, h, exp0, c):
    """The flight of "precise" over h (ms) from (v, w), ``exp0`` the exponential
    term over v_sharpness there (:func:`_exp_at_start`): the Taylor series of rho,
    y, u (see the module docstring) to order :data:`SERIES_ORDER`, summed for the
    state at the end of the step and solved for the crossing. Returns (v1, w
    at the crossing where the neuron crossed and at the end of the step
    elsewhere, crossed, theta = crossing time / h)."""
    order = SERIES_ORDER.get(jnp.result_type(v).name, 6)
    inv_k = [1. / (k + 1) for k in range(order)]
    x0 = (v - c.v_t) * c.inv_delta
    ha = h * c.inv_tau_m
    forcing = drive - v - c.resist_m * w
    # with the exponential term above intrinsic_mem_thr - U_DEPTH D, unless the input moves v by more
    # than SERIES_SPAN D and than the exponential term does in the step (which is then negligible);
    # written as one product: XLA:CPU then fuses it into the flight's loop
    near = _lower(x0 - c.x_far, 0.) * (SERIES_SPAN * c.delta_safe * jnp.maximum(exp0, 1.) - ha * jnp.abs(forcing)) > 0.
    # the scale of rho: D near the spike, D_FAR (far above the step's change of v) where the dynamics are linear
    d_eff = jnp.where(near, c.delta_safe, c.d_far)
    inv_d = jnp.where(near, c.inv_delta, c.inv_d_far)
    big_e = jnp.where(near, exp0, 0.)  # the exponential term / D at the start
    # the series converges within the distance to the upswing's singularity, ~1/(big_e/tau_m), and
    # rho's within the time in which the input moves v by ~D: expand over at most SERIES_REACH times
    # the shorter one (a crossing lies inside it)
    r0 = ha * big_e
    r_all = r0 + ha * jnp.abs(forcing) * inv_d
    s = jnp.where(r_all > SERIES_REACH, SERIES_REACH / jnp.where(r_all > SERIES_REACH, r_all, 1.), 1.)
    # a_psi psi(rho), psi = rho ln rho - rho + 1, carries u's log singularity at the spike
    # (a_psi = a resist_m tau_m/(tau_w big_e)); it matters only within a few steps of it
    pole_near = r0 > POLE_NEAR
    a_psi = jnp.where(pole_near, _quotient(c.a_r * (h * c.inv_tau_w), _lower(r0, 1e-30)), 0.)
    hr, hw = -(ha * s), (h * s) * c.inv_tau_w
    coupled = _all(c.couple_u == 1.)  # static: every input connected (resist_m > 0)
    r_d = c.resist_u * inv_d
    # dimensionless series: rho, y = (v - v0)/d_eff = -ln rho, u = (resist_m/d_eff) w and psi(rho)
    rho, y, y_d, u = [1.], [0.], [0.], [r_d * w]
    g = [forcing * inv_d]  # (drive - v - resist_m w)/d_eff, then g_k = -y_k - u_k
    psi = [0.]
    # The loop's speed is set by the chain of dependent operations from one order to the next, and
    # XLA keeps the order of a sum: every sum below adds its newest terms last. In
    # rho_(k+1) = hr/(k+1) sum_i rho_i g_(k-i), g_k = rho_k + t_k - u_k (y_k = -rho_k - t_k, rho y' = -rho'),
    # so rho_k enters through one multiply-add and the rest is known an order earlier.
    t_k = 0.
    for k in range(order):
        h_k = hr * inv_k[k]
        if k == 0:
            rho.append(h_k * (big_e + g[0]))
        else:
            known = sum(rho[i] * g[k - i] for i in range(k - 1, 0, -1)) + (t_k - u[k])
            rho.append(rho[k] * (h_k * (1. + g[0])) + h_k * known)
        t_k = inv_k[k] * sum(rho[i] * y_d[k + 1 - i] for i in range(k, 0, -1)) if k else 0.
        y.append(-rho[k + 1] - t_k)
        y_d.append((k + 1) * y[k + 1])
        u_src = c.a_r * (v - c.v_rest) * inv_d - u[0] if k == 0 else c.a_r * y[k] - u[k]
        u.append((hw * inv_k[k]) * u_src)
        g.append(-y[k + 1] - (u[k + 1] if coupled else c.couple_u * u[k + 1]))
        # psi's first coefficient, -(y_1 + rho_1), vanishes (y_1 = -rho_1)
        psi.append(-(y[k + 1] + sum(rho[i] * y[k + 1 - i] for i in range(1, k + 1))) - rho[k + 1] if k else 0.)
    q = [0.] + [u[k] - a_psi * psi[k] for k in range(1, order + 1)]
    rho_sum = sum(rho)  # left to right: the newest term last
    # a NaN state or input never takes the logarithm's path (pole_near is false there)
    rho1 = _lower(rho_sum, 1e-30)
    log1 = fast_log(rho1)
    # v from rho near the spike's singularity (rho is smooth through the upswing), from y elsewhere
    # (there y converges fast whatever v's change, while rho, its exponential, needs a change << D)
    v1 = v + d_eff * jnp.where(pole_near, -log1, sum(y))
    # the crossing, where rho falls to rho_spike (without the exponential term: where v reaches v_spike)
    rho_spike = big_e * c.rho_spike  # 0 where the exponential term is dropped: no crossing
    f, f1, level = rho, rho_sum, rho_spike
    if _any(c.smooth_crossing):  # lanes whose crossing the dropped exponential term may hold
        f = [jnp.where(near, 1., 0.)] + [jnp.where(near, rho[k], -y[k]) for k in range(1, order + 1)]
        f1, level = sum(f), jnp.where(near, rho_spike, (v - c.v_spike) * inv_d)
    crossed = f1 < level
    # Newton's method from the tangent's root (f falls almost linearly near the crossing)
    f_d = [k * f[k] for k in range(1, order + 1)]
    theta = _unit_ratio(level - f[0], _upper(f[1], -1e-30))
    theta = _unit_newton(theta, _horner(f, theta) - level, _upper(_horner(f_d, theta), -1e-30))
    # w at the crossing or at the end of the step (ln(rho_spike) = x0 - x_spike)
    rho_end, log_end = jnp.where(crossed, rho_spike, rho1), jnp.where(crossed, x0 - c.x_spike, log1)
    w1 = w + (d_eff * c.inv_resist_m) * (_horner(q, jnp.where(crossed, theta, 1.))
                                         + a_psi * (rho_end * log_end - rho_end + 1.))
    # parameters far outside the series' reach (tau_m or tau_w much shorter than the step) can overflow
    # it: the neuron then keeps its state for the step (plus forcing - forcing: a NaN input stays NaN).
    # No crossing there, nor while clamped for the whole step (h = 0: a reset beyond the capped peak).
    # Selects on comparisons, no boolean arithmetic: XLA:CPU would pack the masks to bytes and back.
    finite = jnp.abs(v1 + w1) < jnp.inf
    keep = forcing - forcing
    v1, w1 = jnp.where(finite, v1, v + keep), jnp.where(finite, w1, w + keep)
    crossed = jnp.where(finite, f1, level) < jnp.where(h > 0., level, -jnp.inf)
    return jnp.clip(v1, -STATE_BOUND, c.v_spike), w1, crossed, theta * s


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


def _held_v(v, r_a, c):
    """v_reset where some of the step is served clamped (``r_a > 0``), else v."""
    return jnp.where(r_a > 0., c.v_reset, v)


def _serve_refractory(v, w, ref_left, dt, c):
    """Clamped share of the step at its start: (r_a, v, w) with v held at
    v_reset and w relaxed over r_a."""
    r_a = _clamped_share(ref_left, dt)
    return r_a, _held_v(v, r_a, c), _relax_w(w, r_a, c)


def _euler_flight(v, w, j, ref_left, exp_v, *, dt, c, refractory):
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
    v1, w1 = _materialized_pair(partial(_euler_flight, dt=dt, c=c, refractory=refractory),
                                (state.v, state.w, j, state.ref_left, _exp_of(state.v, c)), dt, pack=False)
    s = (v1 > c.v_spike).astype(v1.dtype)
    v0, r_a, h_free, ref_left = state.v, 0., dt, state.ref_left
    if refractory:
        r_a = _clamped_share(ref_left, dt)
        v0, h_free = _held_v(v0, r_a, c), dt - r_a
        if _any(c.v_top > c.v_spike):  # held above the spike potential: no spike while clamped
            s = jnp.where(h_free > 0., s, 0.)
        ref_left = _blend(s, c.refract_time, jnp.maximum(ref_left - dt, 0.))
        v1 = jnp.where(ref_left > 0., c.v_reset, v1)  # exactly v_reset while clamped
    # linear interpolation where the step rose through v_spike (then v1 > v0); 0 where it started above
    below = v0 < c.v_spike
    crossing = lambda: (t - dt) + r_a + h_free * jnp.where(
        below, _unit_ratio(c.v_spike - v0, jnp.where(below, _blend(s, v1 - v0, 1.), 1.)), 0.)
    tols, t_spike = _spike_times(state, s, t, crossing, track_times)
    return AdExState(v=_blend(s, c.v_reset, v1), w=_clamp_w(_blend(s, w1 + c.b, w1)),
                     ref_left=ref_left, s=s, tols=tols, t_spike=t_spike)


def _exp_at_start(v, ref_left, dt, c, refractory, method):
    """exp((v - intrinsic_mem_thr)/v_sharpness) where the flight starts (after
    the clamped share of the step), as :func:`vw_field` computes it for the
    Runge-Kutta integrators and to float32 accuracy for "precise"."""
    if refractory:
        v = _held_v(v, _clamped_share(ref_left, dt), c)
    coarse = method != "precise"
    if coarse:
        v = _box(v, -STATE_BOUND, c.v_spike)
    return _exp_term(v, c, coarse)


def _flight(v, w, drive, ref_left, exp0, *, dt, c, method, refractory):
    """The free flight of every neuron over its share of the step (``exp0``:
    :func:`_exp_at_start`): returns ``(v1, w1)`` at the end of
    the step, or, where the neuron crossed, ``(encoded crossing fraction, w
    after the reset and the refractory period served inside the step)``."""
    h = dt
    if refractory:
        r_a, v, w = _serve_refractory(v, w, ref_left, dt, c)
        h = dt - r_a
    if method == "precise":
        v1, w1, crossed, theta = _flight_series(v, w, drive, h, exp0, c)
        w_cross = w1
    else:
        v1, w1, crossed, theta, w_cross = _flight_vw(v, w, drive, h, exp0, c, method)
    # a flight that starts above the spike potential (v_reset >= thr, or a state set there) spikes at
    # its start; a neuron held for the whole step (h = 0) does not spike
    above = v > jnp.where(h > 0., c.v_spike, jnp.inf)
    crossed = jnp.where(above, above, crossed)
    if refractory and _any(c.v_top > c.v_spike):  # held above the spike potential for the whole step:
        crossed = jnp.where(h > 0., crossed, False)  # no spike, and v1 below v_spike (the encoding's rule)
        v1 = jnp.minimum(v1, c.v_spike)
    # (drive - drive: 0, or NaN for a NaN input, which then makes the neuron NaN rather than spike)
    theta, w_cross = jnp.where(above, drive - drive, theta), jnp.where(above, w, w_cross)
    w_r = w_cross + c.b
    if refractory:
        w_r = _relax_w(w_r, jnp.minimum(c.refract_time, h * (1. - theta)), c)
    return jnp.where(crossed, _encode_theta(theta, c), v1), _clamp_w(jnp.where(crossed, w_r, w1))


def _encode_theta(theta, c):
    # above v_spike, so a crossing is told from a potential; relative resolution ~1e-7 of the step
    return c.v_spike + (1. + theta) * c.theta_scale


def _decode_theta(v1, c):
    return (v1 - c.v_spike) * c.inv_theta_scale - 1.


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


def _materialized_pair(flight, args, dt, pack=True):
    """``flight(*args)``, a pair of arrays, computed in one pass (``dt``: the step).

    Several of the step's outputs derive from the flight; XLA:CPU cannot fuse a loop
    with several outputs, so it would re-derive the flight (for a Runge-Kutta
    step: every stage) in each consumer. Packing the pair into one complex
    array gives the flight a single output, and computing it in a branch of a
    conditional (both branches the same) makes XLA keep that array instead of
    fusing it into each consumer. A flight as cheap as Euler's is better
    returned unpacked (``pack=False``): the branch then computes each array
    in its own loop, and the consumers still only read them. The predicate
    must not be known to XLA, or it folds the conditional away: ``dt`` comes
    from :func:`_runtime_step`. Scalar constants that ``flight`` is bound to
    enter the branches as literals (:func:`_literal`). Other backends fuse
    multi-output loops themselves and take the plain path."""
    shape = jnp.shape(args[0])
    args = tuple(jnp.broadcast_to(x, shape) for x in args)
    if jax.default_backend() != "cpu":
        return flight(*args)
    if isinstance(flight, partial):
        flight = partial(flight.func, *flight.args, **jax.tree_util.tree_map(_literal, flight.keywords))
    branch = (lambda *a: jax.lax.complex(*flight(*a))) if pack else flight
    out = jax.lax.cond(jnp.isfinite(dt), branch, branch, *args)
    return (jnp.real(out), jnp.imag(out)) if pack else out


def _runtime_step(dt, dtype):
    """``dt`` as an array of ``dtype`` that XLA treats as known only at run time.

    A Python float ``dt`` (closed over in a user's ``jit(lax.scan(...))``) is a
    compile-time constant: XLA would then fold the conditional of
    :func:`_materialized_pair` (and re-fuse the flight into each of its
    consumers: 1.6-5x slower) and fold arithmetic on ``dt`` in another
    rounding than the float32 ops of a traced ``dt``. Behind an optimization
    barrier the step compiles to the same program and the same bits whether
    ``dt`` is a constant or traced (``MethodProcess.scan`` passes it traced)."""
    return jax.lax.optimization_barrier(jnp.asarray(dt, dtype=dtype))


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
    dt = _runtime_step(dt, state.v.dtype)
    if method == "euler":
        return _advance_euler(state, j, t, dt, c, refractory, track_times)
    ref_left = state.ref_left
    # the input once, for the flight and the step after a spike (a constant input leaves the time loop)
    drive = _drive(j, c)
    # the exponential at the start in a loop of its own: at the head of the flight's chains of
    # dependent operations it would hold up the flight's loop (3-9% faster at 1e5 neurons)
    args = (state.v, state.w, drive, ref_left, _exp_at_start(state.v, ref_left, dt, c, refractory, method))
    v1, w1 = _materialized_pair(partial(_flight, dt=dt, c=c, method=method, refractory=refractory), args, dt)
    crossed = v1 > c.v_spike
    s = crossed.astype(v1.dtype)
    r_a = _clamped_share(ref_left, dt) if refractory else 0.
    t_cross = r_a + _decode_theta(v1, c) * (dt - r_a)  # from the step start, where s = 1
    rest = dt - t_cross
    # computed in the loops that write v and w (~4% faster than a pass of its own)
    v, w = _remainder(v1, w1, crossed, drive, rest, dt, c, refractory, method)
    if refractory:
        ref_left = _blend(s, jnp.maximum(c.refract_time - rest, 0.), jnp.maximum(ref_left - dt, 0.))
        v = jnp.where(ref_left > 0., c.v_reset, v)  # exactly v_reset while clamped
    tols, t_spike = _spike_times(state, s, t, lambda: (t - dt) + t_cross, track_times)
    return AdExState(v=v, w=w, ref_left=ref_left, s=s, tols=tols, t_spike=t_spike)


def _remainder(v1, w1, crossed, drive, rest, dt, c, refractory, method):
    """Where the flight ``crossed`` (``v1`` encodes the crossing, ``w1`` is w
    after the reset): (v, w) at the end of the step, integrated from v_reset
    over the ``rest`` of the step after the refractory period; elsewhere
    ``(v1, w1)``. A second-order Taylor step with the Jacobian at v_reset,
    where the exponential term is a constant of the neuron (error below
    1e-3 mV after a spike, no exponential to evaluate), or, for the
    Runge-Kutta integrators where every neuron spikes through the upswing of
    the exponential term, a forward Euler step: its error (~1e-3 mV) is far
    below what the upswing costs their spike times (~0.2 ms, about 1 mV at the
    reset). Where v is smooth up to the spike potential (no exponential term,
    or thr <= intrinsic_mem_thr) their spike times are accurate, and so must be
    the step after a spike."""
    # Bounds by compare-and-select (cheaper than NaN-propagating ones): only where the neuron
    # crossed is the result kept, and there every input is finite; where extreme parameters
    # overflow the Jacobian's product (inf, or NaN from inf * 0), the step still ends finite.
    h = _box(rest - c.refract_time if refractory else rest, 0., dt)
    dv = (drive - c.v_reset + c.exp_reset - c.resist_m * w1) * c.inv_tau_m
    dw = (c.w_refract - w1) * c.inv_tau_w
    if method == "precise" or _any(c.smooth_crossing):
        dv, dw = (dv + _scaled(0.5 * h, c.jac_vv * dv - c.resist_m * c.inv_tau_m * dw),
                  dw + (0.5 * h) * (c.a * dv - dw) * c.inv_tau_w)
    bound = STATE_BOUND / dt
    v = c.v_reset + h * _box(dv, -bound, bound)
    w = w1 + h * _box(dw, -bound, bound)
    return (jnp.where(crossed, _box(v, -STATE_BOUND, c.v_top), v1),
            jnp.where(crossed, _box(w, -STATE_BOUND, STATE_BOUND), w1))
