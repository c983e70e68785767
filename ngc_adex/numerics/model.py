r"""The AdEx model: parameters, state, bounds, the vector field.

Units follow ngc-learn's parameterisation (ms, mV, and ``resist_m * j`` /
``resist_m * w`` in mV)::

    tau_m dv/dt = -(v - v_rest) + v_sharpness exp((v - intrinsic_mem_thr)/v_sharpness)
                  - resist_m w + resist_m j
    tau_w dw/dt = -w + a (v - v_rest)
    spike when v crosses thr (intrinsic_mem_thr if v_sharpness = 0):
        v <- v_reset, w <- w + b, v held at v_reset for refract_time ms.

Throughout, ``x = (v - intrinsic_mem_thr)/v_sharpness`` is the exponent,
``exp(x)`` the exponential factor and ``v_sharpness exp(x)`` the exponential
term (mV); ``drive = v_rest + resist_m j`` is the input as the field takes it.

Overflow safety: inside every Runge-Kutta right-hand side v is clamped to the
spike potential (as NEST does) and to a finite floor, w to a finite box, and
the exponent to :data:`EXP_CAP`; states leaving a step are clamped the same way.
"""
from typing import NamedTuple

import numpy as np
import jax.numpy as jnp

from . import devices
from .ops import at_most, clamp

#: cap on the exponent inside exp(); exp(60) ~ 1e26 keeps float32 finite and
#: shifts spike times by ~tau_m * exp(-60)
EXP_CAP = 60.
#: ``|v|`` and ``|w|`` never exceed this (mV / pA); reached only by diverging runs
STATE_BOUND = 1e9
#: what each parameter acts as in the arithmetic (the state box bounds ``|v|`` and ``|w|`` by STATE_BOUND, and a
#: trajectory that reaches it has left every physical regime): potentials, gains and v_sharpness beyond
#: STATE_BOUND act as STATE_BOUND; thr beyond twice that is never (or always) reached, as beyond any bound;
#: time constants below 1e-9 ms act as 1e-9 ms; refract_time is taken as it is
PARAM_BOX = {"thr": (-2. * STATE_BOUND, 2. * STATE_BOUND), "tau_m": (1e-9, np.inf), "tau_w": (1e-9, np.inf),
             "refract_time": (0., np.inf)}


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
    """Everything the step needs, derived once from :class:`AdExParams`
    (:func:`ngc_adex.numerics.coefficients`)."""
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
    x_far: jnp.ndarray        # -U_DEPTH where v_sharpness > 0, else +inf: "precise" drops the exponential term below
    x_keep: jnp.ndarray       # ln(FAR_TOL tau_m): "precise" keeps that term where ln(h) + x at the end of the step exceeds it
    d_far: jnp.ndarray        # max(v_sharpness, D_FAR): the scale of rho where the exponential term is dropped
    inv_d_far: jnp.ndarray
    x_spike: jnp.ndarray      # the exponent at v_spike, in [-U_DEPTH - 1, EXP_CAP] (0 where v_sharpness = 0)
    rho_spike: jnp.ndarray    # exp(-x_spike) where v_sharpness > 0, else 0
    smooth_crossing: jnp.ndarray  # v is smooth up to the spike potential (v_sharpness = 0 or thr <= intrinsic_mem_thr)
    theta_scale: jnp.ndarray  # max(1, |v_spike|): the unit of an encoded crossing fraction (devices)
    inv_theta_scale: jnp.ndarray
    exp_term_reset: jnp.ndarray  # the exponential term at v_reset (mV)
    jac_vv: jnp.ndarray       # d(dv/dt)/dv at v_reset (1/ms)
    receptors: tuple = ()     # one receptors.Receptor per synaptic receptor


class AdExState(NamedTuple):
    """Per-neuron state, arrays shaped ``(batch_size, n_units)``.

    ``ref_left`` is the refractory time still to serve (ms); ``s`` the spikes
    of the step (0./1.); ``tols`` is the time of the step of the last spike and
    ``t_spike`` the interpolated time of the last threshold crossing, both in
    the time base of ``t``."""
    v: jnp.ndarray
    w: jnp.ndarray
    ref_left: jnp.ndarray
    s: jnp.ndarray
    tols: jnp.ndarray
    t_spike: jnp.ndarray


class Flight(NamedTuple):
    """What an integrator returns for the free flight of every neuron over its
    share of a step: each field is meant where its description says.

    ``v``, ``w``: the state at the end of the step (where not ``crossed``);
    ``crossed``: v crossed the spike potential (bool); ``theta``: the fraction
    of the flight at the crossing, in [0, 1] (where ``crossed``); ``w_cross``:
    w at the crossing (where ``crossed``)."""
    v: jnp.ndarray
    w: jnp.ndarray
    crossed: jnp.ndarray
    theta: jnp.ndarray
    w_cross: jnp.ndarray


def spike_potential(v_sharpness, intrinsic_mem_thr, thr, xp=np):
    """Potential (mV) at which a spike is registered: ``thr``; in the
    integrate-and-fire limit ``v_sharpness = 0``, where the exponential term
    is a wall at ``intrinsic_mem_thr``, the lower of the two (``xp``: ``numpy``,
    or ``jax.numpy`` for traced parameters)."""
    return xp.where(xp.asarray(v_sharpness) > 0, thr, xp.minimum(thr, intrinsic_mem_thr))


def clamp_w(w):
    """w within the state box."""
    return jnp.clip(w, -STATE_BOUND, STATE_BOUND)


def input_drive(j, c: Coefficients):
    """v_rest + resist_m j (mV), the input as the field takes it (j bounded)."""
    return c.v_rest + c.resist_m * jnp.clip(j, -STATE_BOUND, STATE_BOUND)


def exp_factor(v, c: Coefficients, coarse):
    """exp((v - intrinsic_mem_thr)/v_sharpness), the exponent capped at :data:`EXP_CAP`
    (``coarse``: :func:`~ngc_adex.numerics.devices.fast_exp`'s cheaper variant where tuned)."""
    return devices.exp(at_most((v - c.v_t) * c.inv_delta, EXP_CAP), coarse)


def vw_field(v, w, drive, c: Coefficients, ex=None, syn=None):
    """(dv/dt, dw/dt) in ms^-1 at state (v, w) under ``drive`` (mV), for the
    Runge-Kutta integrators (``ex``: the exponential factor at v where already known;
    ``syn``: the receptors' sums (G, J) there, see :mod:`~ngc_adex.numerics.receptors`).

    v is clamped to the spike potential (NEST's min(V, V_peak)) and to a
    finite floor, w to a finite box and the exponent to :data:`EXP_CAP`, so any
    stage value of a Runge-Kutta step gives a finite field."""
    v = clamp(v, -STATE_BOUND, c.v_spike)
    w = clamp(w, -STATE_BOUND, STATE_BOUND)
    if ex is None:
        ex = exp_factor(v, c, coarse=True)
    exp_term = c.delta * ex
    if syn is None:
        dv = (drive - v + exp_term - c.resist_m * w) * c.inv_tau_m
    else:
        G, J = syn
        dv = (drive + J - (1. + G) * v + exp_term - c.resist_m * w) * c.inv_tau_m
    dw = (c.a * (v - c.v_rest) - w) * c.inv_tau_w
    return dv, dw
