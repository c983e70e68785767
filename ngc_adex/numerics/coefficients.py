"""The step's constants, derived once per population from its parameters.

Concrete parameters (numbers, NumPy arrays, concrete JAX arrays) are derived in
NumPy float64 and rounded once to the working dtype; parameters that are JAX
tracers (under ``jax.grad``, ``jax.jit`` or ``jax.vmap`` of a function of the
parameters) take the same expressions in :mod:`jax.numpy`, in the working
dtype, so that the step is differentiable with respect to every parameter.
"""
import numpy as np
import jax.numpy as jnp

from .model import EXP_CAP, PARAM_BOX, STATE_BOUND, AdExParams, Coefficients, spike_potential
from .ops import _static
from .receptors import receptor_coefficients
from .series import D_FAR, FAR_TOL, U_DEPTH


def coefficients(params: AdExParams, dtype=jnp.float32, receptors=()) -> Coefficients:
    """Derives the step's constants from validated parameters (concrete ones in float64,
    then cast to ``dtype``; traced ones in ``dtype``); parameters act as
    :data:`~ngc_adex.numerics.model.PARAM_BOX` bounds them.
    ``receptors``: one :class:`~ngc_adex.numerics.receptors.ReceptorParams` per synaptic receptor."""
    known = [_static(v) for v in params]
    if all(k is not None for k in known):
        xp, np_dtype = np, np.dtype(jnp.dtype(dtype).name)
        p = {k: np.asarray(v, dtype=np.float64) for k, v in zip(params._fields, known)}
    else:
        xp, np_dtype = jnp, jnp.dtype(dtype)
        p = {k: jnp.asarray(v, dtype=dtype) for k, v in params._asdict().items()}
    p = {k: xp.clip(v, *PARAM_BOX.get(k, (-STATE_BOUND, STATE_BOUND))) for k, v in p.items()}
    delta = p["v_sharpness"]
    has_exp = delta > 0
    d_safe = xp.where(has_exp, delta, 1.)
    v_spike = spike_potential(delta, p["intrinsic_mem_thr"], p["thr"], xp)
    # below -U_DEPTH every lane that keeps the exponential term starts above the spike potential
    # (and spikes at once), so the bound only keeps exp(-x_peak) finite
    x_peak = xp.clip((p["thr"] - p["intrinsic_mem_thr"]) / d_safe, -U_DEPTH - 1., EXP_CAP)
    resist_u = xp.where(p["resist_m"] > 0, p["resist_m"], 1.)
    exp_term_reset = delta * xp.exp(xp.minimum((p["v_reset"] - p["intrinsic_mem_thr"]) / d_safe, EXP_CAP))
    # reciprocals rounded in the working precision, as ngc-learn's cell computes them (bitwise Euler match)
    inv_tau_m, inv_tau_w = (xp.asarray(1., dtype=np_dtype) / p[k].astype(np_dtype) for k in ("tau_m", "tau_w"))
    out = dict(
        inv_tau_m=inv_tau_m, inv_tau_w=inv_tau_w, resist_m=p["resist_m"],
        delta=delta, delta_safe=d_safe, inv_delta=1. / d_safe, has_exp=has_exp, v_t=p["intrinsic_mem_thr"],
        v_spike=v_spike, v_top=xp.maximum(v_spike, p["v_reset"]), v_rest=p["v_rest"], v_reset=p["v_reset"],
        a=p["a"], b=p["b"], refract_time=p["refract_time"], w_refract=p["a"] * (p["v_reset"] - p["v_rest"]),
        resist_u=resist_u, inv_resist_m=1. / resist_u, couple_u=p["resist_m"] / resist_u,
        a_r=p["a"] * resist_u, x_far=xp.where(has_exp, -U_DEPTH, np.inf),
        x_keep=xp.log(FAR_TOL * p["tau_m"]), d_far=xp.maximum(delta, D_FAR), inv_d_far=1. / xp.maximum(delta, D_FAR),
        x_spike=xp.where(has_exp, x_peak, 0.), rho_spike=xp.where(has_exp, xp.exp(-x_peak), 0.),
        smooth_crossing=~has_exp | (p["thr"] <= p["intrinsic_mem_thr"]),
        theta_scale=xp.maximum(1., xp.abs(v_spike)), inv_theta_scale=1. / xp.maximum(1., xp.abs(v_spike)),
        exp_term_reset=exp_term_reset, jac_vv=(exp_term_reset / d_safe - 1.) / p["tau_m"],
    )
    return Coefficients(**{k: (jnp.asarray(v) if xp.asarray(v).dtype == bool else jnp.asarray(v, dtype=dtype))
                           for k, v in out.items()},
                        receptors=tuple(receptor_coefficients(r, p["resist_m"], dtype) for r in receptors))
