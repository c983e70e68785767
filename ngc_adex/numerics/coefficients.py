"""The step's constants, derived once per population from its parameters."""
import numpy as np
import jax.numpy as jnp

from .model import EXP_CAP, PARAM_BOX, STATE_BOUND, AdExParams, Coefficients, spike_potential
from .receptors import receptor_coefficients
from .series import D_FAR, FAR_TOL, U_DEPTH


def coefficients(params: AdExParams, dtype=jnp.float32, receptors=()) -> Coefficients:
    """Derives the step's constants from validated parameters (in float64,
    then cast to ``dtype``); parameters act as :data:`~ngc_adex.numerics.model.PARAM_BOX` bounds them.
    ``receptors``: one :class:`~ngc_adex.numerics.receptors.ReceptorParams` per synaptic receptor."""
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
    exp_term_reset = delta * np.exp(np.minimum((p["v_reset"] - p["intrinsic_mem_thr"]) / d_safe, EXP_CAP))
    np_dtype = np.dtype(jnp.dtype(dtype).name)
    # reciprocals rounded in the working precision, as ngc-learn's cell computes them (bitwise Euler match)
    inv_tau_m, inv_tau_w = (np_dtype.type(1.) / p[k].astype(np_dtype) for k in ("tau_m", "tau_w"))
    out = dict(
        inv_tau_m=inv_tau_m, inv_tau_w=inv_tau_w, resist_m=p["resist_m"],
        delta=delta, delta_safe=d_safe, inv_delta=1. / d_safe, has_exp=has_exp, v_t=p["intrinsic_mem_thr"],
        v_spike=v_spike, v_top=np.maximum(v_spike, p["v_reset"]), v_rest=p["v_rest"], v_reset=p["v_reset"],
        a=p["a"], b=p["b"], refract_time=p["refract_time"], w_refract=p["a"] * (p["v_reset"] - p["v_rest"]),
        resist_u=resist_u, inv_resist_m=1. / resist_u, couple_u=p["resist_m"] / resist_u,
        a_r=p["a"] * resist_u, x_far=np.where(has_exp, -U_DEPTH, np.inf),
        x_keep=np.log(FAR_TOL * p["tau_m"]), d_far=np.maximum(delta, D_FAR), inv_d_far=1. / np.maximum(delta, D_FAR),
        x_spike=np.where(has_exp, x_peak, 0.), rho_spike=np.where(has_exp, np.exp(-x_peak), 0.),
        smooth_crossing=~has_exp | (p["thr"] <= p["intrinsic_mem_thr"]),
        theta_scale=np.maximum(1., np.abs(v_spike)), inv_theta_scale=1. / np.maximum(1., np.abs(v_spike)),
        exp_term_reset=exp_term_reset, jac_vv=(exp_term_reset / d_safe - 1.) / p["tau_m"],
    )
    return Coefficients(**{k: (jnp.asarray(v) if np.asarray(v).dtype == bool else jnp.asarray(v, dtype=dtype))
                           for k, v in out.items()},
                        receptors=tuple(receptor_coefficients(r, p["resist_m"], dtype) for r in receptors))
