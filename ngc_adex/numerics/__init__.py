"""Pure-JAX numerics of the AdEx cell: no ngcsimlib import; the
:class:`~ngc_adex.AdExCell` component is a thin shell around :func:`advance`.

=================  ============================================================
``model``          parameters, state, bounds, the vector field, the spike potential
``coefficients``   the step's constants, derived once per population
``step``           :func:`advance`: one step of every neuron (the entry point)
``reset``          refractory clamp, reset, spike times, the step after a spike
``euler``          ngc-learn's forward Euler, operation for operation
``runge_kutta``    midpoint, Heun, Ralston, RK4; dense output and crossing
``series``         "precise": the Taylor series of the exact solution
``ops``            clamps, blends and quotients with finite derivatives
``surrogate``      opt-in surrogate derivatives of the spike output
``trajectory``     :func:`simulate_params`, :func:`simulate_summary`: differentiable runs
``readout``        spike summaries, pseudo-times of absent spikes, spike-train losses
``devices``        XLA:CPU speed devices, with the plain path beside them
=================  ============================================================
"""
from .coefficients import coefficients
from .devices import fast_exp, fast_log, plain_numerics
from .model import EXP_CAP, PARAM_BOX, STATE_BOUND, AdExParams, AdExState, Coefficients, Flight, spike_potential
from .step import INTEGRATOR_CODES, METHOD_ALIASES, METHODS, advance, check_current_shape
from .surrogate import ESTIMATORS
from .readout import SpikeSummary, extra_spike_penalty, pseudo_spike_times, summarize, van_rossum_distance
from .trajectory import Trajectory, simulate_params, simulate_summary, spike_time

__all__ = ["AdExParams", "AdExState", "Coefficients", "ESTIMATORS", "EXP_CAP", "Flight", "INTEGRATOR_CODES",
           "METHODS", "METHOD_ALIASES", "PARAM_BOX", "STATE_BOUND", "SpikeSummary", "Trajectory", "advance", "check_current_shape",
           "coefficients", "extra_spike_penalty", "fast_exp", "fast_log", "plain_numerics", "pseudo_spike_times",
           "simulate_params", "simulate_summary", "spike_potential", "spike_time", "summarize",
           "van_rossum_distance"]
