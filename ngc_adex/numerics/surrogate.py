r"""Surrogate derivatives of the binary spike output ``s`` (opt-in).

The spike output is a step function of the membrane potential: its derivative
is 0 almost everywhere, so ``jax.grad`` through ``s`` alone is 0. With an
estimator, ``s`` keeps its value (bitwise: the estimator acts only on the
derivative, through :func:`jax.custom_jvp`) and takes the derivative

    ds/dx = d_spike(x),   x = v_pre - v_spike  (mV)

where ``v_pre`` is the potential at the end of the step before the reset:
where the neuron did not spike, v at the end of the step; where it did, the
value at the end of the step of the straight line from where the flight
started through the crossing (for "euler", which interpolates its crossing on
that line, v at the end of its step). ``x`` is continuous as a neuron passes
from just missing the spike potential to just crossing it inside the step.
Only the emitted ``s`` carries the estimator: the reset, the refractory clamp
and the spike times take the exact spike.

The estimators are ngc-learn's (``ngclearn.utils.surrogate_fx``), with their
default widths (``x`` in mV):

=========================  ============================================
``"straight_through"``     ``1``
``"triangular"``           ``max(0, 1 - 2 |x|)``
``"explicit_triangular"``  ``max(0, 1 - |x|/5)``
``"arctan"``               ``1/(pi (1 + (pi x)^2))``
``"boxcar"``               ``1`` where ``|x| <= 5``, else ``0``
=========================  ============================================
"""
from functools import partial

import jax
import jax.numpy as jnp

#: the estimators' derivatives ds/dx (1/mV) of x = v_pre - v_spike (mV), by ngc-learn's names
ESTIMATORS = {
    "straight_through": lambda x: jnp.ones_like(x),
    "triangular": lambda x: jnp.maximum(0., 1. - 2. * jnp.abs(x)),
    "explicit_triangular": lambda x: jnp.maximum(0., 1. - jnp.abs(x) / 5.),
    "arctan": lambda x: (1. / (1. + jnp.square(x * jnp.pi))) * (1. / jnp.pi),
    "boxcar": lambda x: jnp.where(jnp.abs(x) <= 5., 1., 0.).astype(jnp.result_type(x)),
}


def d_spike(x, estimator):
    """The derivative ds/dx (1/mV) of ``estimator`` (a key of :data:`ESTIMATORS`) at ``x`` (mV)."""
    return ESTIMATORS[estimator](x)


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def emit(s, x, estimator):
    """The spikes ``s`` (0./1.), unchanged; their derivative is ``d_spike(x, estimator)`` times
    that of ``x`` (mV, the potential before the reset less the spike potential)."""
    return s


@emit.defjvp
def _emit_jvp(estimator, primals, tangents):
    s, x = primals
    return s, d_spike(x, estimator) * tangents[1]


def surrogate_outputs(out, syn, x, estimator):
    """A step's result with the estimator: ``out`` (an AdExState) with ``s`` carrying the derivative
    at ``x`` (mV), then the receptors' state ``syn`` where there is one, then d_spike(x) (1/mV)."""
    out = out._replace(s=emit(out.s, x, estimator))
    return (out, *(() if syn is None else (syn,)), d_spike(x, estimator))
