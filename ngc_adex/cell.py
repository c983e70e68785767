"""The ngc-learn component: a thin shell of compartments around :mod:`ngc_adex.dynamics`."""
import os
from functools import partial

import numpy as np
import jax.numpy as jnp
from ngcsimlib import deprecate_args
from ngclearn import Compartment, compilable
from ngclearn.components.jaxComponent import JaxComponent

from . import dynamics, params as _params


def _adex_step(v, w, ref_left, s, tols, t_spike, j, t, dt, *, coeffs, method, refractory, track_times):
    """Compartment arrays in, compartment arrays out (bound per cell, see ``AdExCell._step``)."""
    state = dynamics.AdExState(v=v, w=w, ref_left=ref_left, s=s, tols=tols, t_spike=t_spike)
    return tuple(dynamics.advance(state, j, t, dt, coeffs, method, refractory, track_times))


def _jsonable(value):
    return np.asarray(value).tolist() if isinstance(value, (np.ndarray, jnp.ndarray)) else value


class AdExCell(JaxComponent):
    """
    The AdEx (adaptive exponential integrate-and-fire) spiking cell, a drop-in
    superset of ngc-learn's ``AdExCell`` that never produces NaN, with real
    integrators of the coupled (v, w) system, an absolute refractory period,
    sub-step ("precise") spike times and per-neuron parameters.

    The pair of differential equations (given input current j) is:

    | tau_m * dv/dt = -(v - v_rest) + v_sharpness * exp((v - intrinsic_mem_thr)/v_sharpness)
    |                 - resist_m * w + resist_m * j
    | tau_w * dw/dt = -w + a * (v - v_rest)
    | spike when v crosses thr (intrinsic_mem_thr if v_sharpness = 0); then
    | v <- v_reset, w <- w + b, and v is held at v_reset for refract_time ms
    | while w keeps evolving (with v = v_reset)

    Inside the right-hand side v is clamped to the spike potential (as NEST
    does), the exponent is capped and resets use ``where``, so no valid
    parameter set, finite input or step size yields NaN or inf; ``v <= thr``
    after every step, and at most one spike per neuron and step is emitted.
    A NaN input current makes only the neuron it is fed to NaN.

    | --- Cell Input Compartments: ---
    | j - electrical input current (pA with physical units, see ``from_physical``)
    | --- Cell State Compartments: ---
    | v - membrane potential/voltage at time t (mV)
    | w - adaptation/recovery current at time t (pA with physical units)
    | ref_left - refractory time still to serve at time t (ms; 0 when free)
    | key - JAX PRNG key
    | --- Cell Output Compartments: ---
    | s - emitted binary spikes in the step (t - dt, t]
    | tols - time-of-last-spike: the t of the step that spiked (ms; as in ngc-learn)
    | t_spike - precise time of the last spike, the threshold crossing
    |           interpolated inside the step, same time base as tols (ms;
    |           kept when precise_times is on, see below, else 0)

    Each ``advance_state(t, dt)`` moves every neuron from t - dt to t. For
    all integrators but "euler" the reset happens at the crossing and the
    rest of the step is integrated from there (one explicit step, after the
    refractory period), so the compartments always hold the state at time
    t. "euler" keeps ngc-learn's semantics (reset at the end of the
    step) and reproduces ngc-learn's ``AdExCell`` wherever that one stays
    finite (same spikes, v and w to float32 rounding).

    | References:
    | Brette, Romain, and Wulfram Gerstner. "Adaptive exponential
    | integrate-and-fire model as an effective description of neuronal
    | activity." Journal of neurophysiology 94.5 (2005): 3637-3642.
    |
    | Naud, Richard, et al. "Firing patterns in the adaptive exponential
    | integrate-and-fire model." Biological cybernetics 99.4 (2008): 335-347.

    Args:
        name: the string name of this cell

        n_units: number of cellular entities (neural population size)

        tau_m: membrane time constant (Default: 15 ms); C/g_L

        resist_m: membrane resistance (Default: 1); 1/g_L in GOhm makes j, w pA

        tau_w: adaptation time constant (Default: 400 ms)

        v_sharpness: slope factor Delta_T (Default: 2 mV); 0 gives the
            integrate-and-fire limit (no exponential term, spike at
            intrinsic_mem_thr)

        intrinsic_mem_thr: threshold of the exponential term V_T (Default: -55 mV)

        thr: spike detection potential V_peak (Default: 5 mV)

        v_rest: resting/leak reversal potential E_L (Default: -72 mV)

        v_reset: reset potential after a spike (Default: -75 mV)

        a: subthreshold adaptation coupling (Default: 0.1; nS with physical units)

        b: spike-triggered adaptation increment (Default: 0.75; pA with physical units)

        v0: initial condition / reset value of v (Default: -70 mV)

        w0: initial condition / reset value of w (Default: 0)

        integration_type: "euler" (or "rk1"; ngc-learn's forward Euler),
            "midpoint" (or "rk2"), "rk4" (classical Runge-Kutta on (v, w)), or
            "precise" (Taylor series of the exact solution in a variable that is
            smooth through the spike upswing, spike times exact to ~2e-4 ms at
            dt = 0.1 ms in float32) (Default: "euler")

        batch_size: batch dimension of every compartment (Default: 1)

        refract_time: absolute refractory period (Default: 0 ms)

        precise_times: keep the t_spike compartment up to date (Default:
            None = on for every integrator but "euler", whose default path
            then moves exactly ngc-learn's data and runs as fast)

        key: PRNG key (Default: None, a time-based key)

    Every physiological argument (tau_m ... w0, refract_time) may be a number
    or an array/list broadcastable to (batch_size, n_units) for per-neuron
    values; arrays survive ``Context.save_to_json`` / ``Context.load``. Bad
    values raise ``ValueError`` naming the argument and its allowed range.
    """

    @deprecate_args(v_thr="thr")
    def __init__(
            self, name, n_units, tau_m=15., resist_m=1., tau_w=400., v_sharpness=2., intrinsic_mem_thr=-55., thr=5.,
            v_rest=-72., v_reset=-75., a=0.1, b=0.75, v0=-70., w0=0., integration_type="euler", batch_size=1,
            refract_time=0., precise_times=None, key=None, **kwargs
    ):
        if kwargs:
            raise TypeError(f"AdExCell got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        self.integration_type = _params.normalize_integrator(integration_type)
        if precise_times not in (None, True, False):
            raise ValueError(f"precise_times must be True, False or None, got {precise_times!r}")
        #: whether t_spike tracks the interpolated crossing time
        self.precise_times = self.integration_type != "euler" if precise_times is None else precise_times
        self.n_units, self.batch_size, values = _params.validate(
            n_units, batch_size, tau_m=tau_m, resist_m=resist_m, tau_w=tau_w, v_sharpness=v_sharpness,
            intrinsic_mem_thr=intrinsic_mem_thr, thr=thr, v_rest=v_rest, v_reset=v_reset, a=a, b=b, v0=v0,
            w0=w0, refract_time=refract_time)
        super().__init__(name, key)

        dtype = jnp.zeros(()).dtype  # float32, or float64 under jax_enable_x64
        shape = (self.batch_size, self.n_units)
        #: the validated physiological parameters (float64 arrays)
        self.params = dynamics.AdExParams(**{k: values[k] for k in dynamics.AdExParams._fields})
        self._step = partial(_adex_step, coeffs=dynamics.coefficients(self.params, dtype),
                             method=self.integration_type, refractory=bool(np.any(values["refract_time"] > 0)),
                             track_times=self.precise_times)
        self._v_init = jnp.asarray(np.broadcast_to(values["v0"], shape), dtype=dtype)
        self._w_init = jnp.asarray(np.broadcast_to(values["w0"], shape), dtype=dtype)

        zeros = jnp.zeros(shape, dtype=dtype)
        self.j = Compartment(zeros, display_name="Current", units="pA")
        self.v = Compartment(self._v_init, display_name="Voltage", units="mV")
        self.w = Compartment(self._w_init, display_name="Recovery", units="pA")
        self.s = Compartment(zeros, display_name="Spikes")
        self.tols = Compartment(zeros, display_name="Time-of-Last-Spike", units="ms")
        self.t_spike = Compartment(zeros, display_name="Precise Time-of-Last-Spike", units="ms")
        self.ref_left = Compartment(zeros, display_name="Refractory Time Left", units="ms")

    @compilable
    def advance_state(self, t, dt):
        v, w, ref_left, s, tols, t_spike = self._step(
            self.v.get(), self.w.get(), self.ref_left.get(), self.s.get(), self.tols.get(), self.t_spike.get(),
            self.j.get(), t, dt)
        self.v.set(v)
        self.w.set(w)
        self.ref_left.set(ref_left)
        self.s.set(s)
        self.tols.set(tols)
        self.t_spike.set(t_spike)

    @compilable
    def reset(self):
        rest = jnp.zeros((self.batch_size, self.n_units), dtype=self._v_init.dtype)
        if not self.j.targeted:
            self.j.set(rest)
        self.v.set(self._v_init)
        self.w.set(self._w_init)
        self.ref_left.set(rest)
        self.s.set(rest)
        self.tols.set(rest)
        self.t_spike.set(rest)

    def to_json(self):
        """Constructor arguments for ``Context.save_to_json``; per-neuron arrays
        are stored as lists (the PRNG key is restored from the saved state)."""
        self._args = tuple(_jsonable(a) for a in self._args)
        self._kwargs = {k: _jsonable(v) for k, v in self._kwargs.items() if k != "key"}
        return super().to_json()

    def load(self, directory):
        """Restores every saved compartment from ``directory/<name>.npz``;
        a missing, unreadable or incomplete file raises an error naming it."""
        path = os.path.join(directory, self.name + ".npz")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"saved state of AdExCell '{self.name}' not found: {path}")
        try:
            with np.load(path) as data:
                saved = {k: data[k] for k in data.files}
        except Exception as err:
            raise ValueError(f"saved state of AdExCell '{self.name}' is corrupted: {path} ({err})") from err
        for comp_name, comp in self.compartments:
            if comp_name not in saved:
                if comp_name == "j" or not comp.auto_save:  # a wired input is not saved
                    continue
                raise ValueError(f"saved state {path} lacks compartment '{comp_name}'")
            value = saved[comp_name]
            expected = np.shape(comp.get())
            if value.shape != expected:
                raise ValueError(f"saved state {path}: compartment '{comp_name}' has shape {value.shape}, "
                                 f"expected {expected}")
            comp.set(jnp.asarray(value))

    @classmethod
    def help(cls):  ## component help function
        properties = {
            "cell_type": "AdExCell - evolves neurons according to adaptive exponential integrate-and-fire "
                         "dynamics (exact, never-NaN superset of ngc-learn's AdExCell)."
        }
        compartment_props = {
            "inputs":
                {"j": "External input electrical current",
                 "key": "JAX PRNG key"},
            "states":
                {"v": "Membrane potential/voltage at time t",
                 "w": "Recovery/adaptation variable at time t",
                 "ref_left": "Refractory time still to serve at time t (ms)"},
            "outputs":
                {"s": "Emitted spikes/pulses in the step (t - dt, t]",
                 "tols": "Time-of-last-spike (t of the step that spiked)",
                 "t_spike": "Precise time of the last spike (threshold crossing interpolated inside the step)"},
        }
        hyperparams = {
            "n_units": "Number of neuronal cells to model in this layer",
            "batch_size": "Batch size dimension of this component",
            "tau_m": "Cell membrane time constant (ms)",
            "resist_m": "Membrane resistance value",
            "tau_w": "Recovery variable time constant (ms)",
            "thr": "Spike detection potential (mV)",
            "v_rest": "Resting membrane potential value (mV)",
            "v_reset": "Reset membrane potential value (mV)",
            "v_sharpness": "Slope factor/voltage sharpness constant (mV); 0 = integrate-and-fire limit",
            "intrinsic_mem_thr": "Intrinsic membrane threshold (mV)",
            "a": "Adaptation coupling parameter",
            "b": "Adaption/recover increment value",
            "v0": "Initial condition for membrane potential/voltage (mV)",
            "w0": "Initial condition for recovery variable",
            "refract_time": "Absolute refractory period (ms)",
            "precise_times": "Track the interpolated spike time t_spike (default: all integrators but euler)",
            "integration_type": "Integrator: euler/rk1, midpoint/rk2, rk4 or precise"
        }
        info = {cls.__name__: properties,
                "compartments": compartment_props,
                "dynamics": "tau_m * dv/dt = -(v - v_rest) + v_sharpness * exp((v - intrinsic_mem_thr)/v_sharpness) "
                            "- resist_m * w + resist_m * j; tau_w * dw/dt = -w + a * (v - v_rest); "
                            "on crossing thr: v <- v_reset, w <- w + b, v held for refract_time",
                "hyperparameters": hyperparams}
        return info
