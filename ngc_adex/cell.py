"""The ngc-learn component: a thin shell of compartments around :mod:`ngc_adex.numerics`."""
import os
from functools import partial

import numpy as np
import jax.numpy as jnp
from ngcsimlib import deprecate_args
from ngclearn import Compartment, compilable
from ngclearn.components.jaxComponent import JaxComponent

from . import numerics, params as _params
from ._checkpoint import load_npz
from ._json import jsonable
from .numerics.receptors import ReceptorState
from .receptors import PortInputs, _ngc_adex_stack_ports, validate_receptors  # noqa: F401 (compiled code calls it)


def _adex_step(v, w, ref_left, s, tols, t_spike, j, t, dt, *, coeffs, method, refractory, track_times,
               surrogate=None):
    """Compartment arrays in, compartment arrays out (bound per cell, see ``AdExCell.step_fn``)."""
    state = numerics.AdExState(v=v, w=w, ref_left=ref_left, s=s, tols=tols, t_spike=t_spike)
    out = numerics.advance(state, j, t, dt, coeffs, method, refractory, track_times, surrogate=surrogate)
    return tuple(out) if surrogate is None else (*out[0], out[1])


def _adex_step_receptors(v, w, ref_left, s, tols, t_spike, j, t, dt, g_syn, h_syn, syn_in, *, coeffs, method,
                         refractory, track_times, surrogate=None):
    """As :func:`_adex_step`, with the receptors' state and the step's port inputs in and out."""
    state = numerics.AdExState(v=v, w=w, ref_left=ref_left, s=s, tols=tols, t_spike=t_spike)
    out, syn, *ds = numerics.advance(state, j, t, dt, coeffs, method, refractory, track_times,
                                     ReceptorState(g_syn, h_syn), syn_in, surrogate)
    return (*out, syn.g, syn.h, *ds)


#: compartments ngc-learn's AdExCell does not have (its checkpoints lack them)
_NOT_IN_BUILTIN = ("t_spike", "ref_left", "surrogate")


def _parameter(name, doc):
    """A physiological parameter as an attribute: a write re-validates it and
    takes effect wherever the cell is compiled next (as in ngc-learn's cell)."""
    return property(lambda self: self._raw[name], lambda self, value: self._update(**{name: value}), doc=doc)


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
    | spike when v crosses thr (min(thr, intrinsic_mem_thr) if v_sharpness = 0); then
    | v <- v_reset, w <- w + b, and v is held at v_reset for refract_time ms
    | while w keeps evolving (with v = v_reset)

    With synaptic receptors (``receptors=``), tau_m * dv/dt gains
    ``- resist_m * sum_k g_k (v - e_rev_k)`` (conductances) and
    ``+ resist_m * sum_k i_k`` (currents), each g_k/i_k with exponential,
    alpha or beta kinetics, integrated inside the step with the membrane
    (NEST's ``aeif_cond_*`` / ``aeif_psc_*``).

    Inside the right-hand side v is clamped to the spike potential (as NEST
    does), the exponent is capped and resets use ``where``, so no valid
    parameter set, finite input or step size yields NaN or inf;
    ``v <= max(thr, v_reset)`` after every step, and at most one spike per
    neuron and step is emitted. A free flight that starts above the spike
    potential (``v_reset >= thr``, ``v0 > thr``) spikes at its start. A NaN
    input current makes only the neuron it is fed to NaN.

    | --- Cell Input Compartments: ---
    | j - electrical input current (pA with physical units, see ``from_physical``)
    | <name> - one per receptor port: summed weights of the step's presynaptic spikes (nS; pA for currents)
    | --- Cell State Compartments: ---
    | v - membrane potential/voltage at time t (mV)
    | w - adaptation/recovery current at time t (pA with physical units)
    | ref_left - refractory time still to serve at time t (ms; 0 when free)
    | g_syn, h_syn - receptor conductances (nS; pA for currents) and their alpha/beta
    |                drives at time t, shaped (receptors, batch_size, n_units)
    | key - JAX PRNG key
    | --- Cell Output Compartments: ---
    | s - emitted binary spikes in the step (t - dt, t]
    | tols - time-of-last-spike: the t of the step that spiked (ms; as in ngc-learn)
    | t_spike - precise time of the last spike, the threshold crossing
    |           interpolated inside the step, same time base as tols (ms;
    |           kept when precise_times is on, see below, else 0)
    | surrogate - with surrogate_type: the estimator's derivative ds/dv of the
    |             step's spikes (1/mV; 0 at reset)

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
            "midpoint" (or "rk2"), "heun" (or "rk2_heun"), "ralston" (or
            "rk2_ralston"), "rk4" (classical Runge-Kutta on (v, w)), any case, or
            "precise" (Taylor series of the exact solution in a variable that is
            smooth through the spike upswing, spike times exact to ~2e-4 ms at
            dt = 0.1 ms in float32) (Default: "euler")

        batch_size: batch dimension of every compartment (Default: 1)

        refract_time: absolute refractory period (Default: 0 ms)

        precise_times: keep the t_spike compartment up to date (Default:
            None = on for every integrator but "euler", whose default path
            then moves exactly ngc-learn's data and runs as fast)

        receptors: synaptic receptor ports (Default: None): a list of dicts
            ``{"name", "kind", "tau_decay", "tau_rise", "e_rev"}`` (kind "exp",
            "alpha" or "beta"; time constants in ms, tau_rise for "beta" only;
            e_rev in mV for a conductance receptor, None for a current one), or
            a NEST preset name ("aeif_cond_exp", "aeif_cond_alpha",
            "aeif_psc_exp", "aeif_psc_alpha"; ports "exc" and "inh"). Each port
            is an input compartment of that name taking the summed weights of
            the step's presynaptic spikes (nS or pA), which act at the step's
            start; the kinetics are integrated inside every integrator (see
            :mod:`ngc_adex.numerics.receptors`)

        surrogate_type: surrogate derivative of the spikes ``s`` for
            ``jax.grad`` (Default: None = off, ``s`` differentiates to 0):
            one of ngc-learn's estimators "straight_through", "triangular",
            "explicit_triangular", "arctan" or "boxcar" (their default widths),
            of the potential before the reset less the spike potential (mV); the
            value of ``s`` is unchanged, bitwise (see
            :mod:`ngc_adex.numerics.surrogate`); adds the compartment ``surrogate``

        key: PRNG key (Default: None, a time-based key)

    Every physiological argument (tau_m ... w0, refract_time) may be a number
    or an array/list broadcastable to (batch_size, n_units) for per-neuron
    values; arrays survive ``Context.save_to_json`` / ``Context.load``. Bad
    values raise ``ValueError`` naming the argument and its allowed range.
    The parameters are attributes under these names and ngc-learn's (``R_m``,
    ``sharpV``, ``vT``, ``integrationType``, ``intgFlag``); a write is
    validated and takes effect where the cell is compiled next, as in
    ngc-learn, and is saved with the model.
    """

    @deprecate_args(v_thr="thr")
    def __init__(
            self, name, n_units, tau_m=15., resist_m=1., tau_w=400., v_sharpness=2., intrinsic_mem_thr=-55., thr=5.,
            v_rest=-72., v_reset=-75., a=0.1, b=0.75, v0=-70., w0=0., integration_type="euler", batch_size=1,
            refract_time=0., precise_times=None, receptors=None, surrogate_type=None, key=None, **kwargs
    ):
        if kwargs:
            raise TypeError(f"AdExCell got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        self._integration_arg = integration_type
        self._precise_times_arg = self._check_precise_times(precise_times)
        if surrogate_type is not None and surrogate_type not in numerics.ESTIMATORS:
            raise ValueError(f"surrogate_type must be None (off) or one of {sorted(numerics.ESTIMATORS)}, "
                             f"got {surrogate_type!r}")
        self.surrogate_type = surrogate_type
        self._raw = dict(tau_m=tau_m, resist_m=resist_m, tau_w=tau_w, v_sharpness=v_sharpness,
                         intrinsic_mem_thr=intrinsic_mem_thr, thr=thr, v_rest=v_rest, v_reset=v_reset, a=a, b=b,
                         v0=v0, w0=w0, refract_time=refract_time)
        self.n_units, self.batch_size, self._values = _params.validate(n_units, batch_size, **self._raw)
        _params.normalize_integrator(integration_type)
        self._receptors_arg = receptors if isinstance(receptors, (str, type(None))) else [dict(r) for r in receptors]
        self.receptor_names, self._receptor_params = validate_receptors(receptors, reserved=set(dir(type(self))) | {
            "j", "v", "w", "s", "tols", "t_spike", "ref_left", "key", "g_syn", "h_syn", "syn_in", "name", "surrogate"})
        super().__init__(name, key)
        self._derived = None

        shape = (self.batch_size, self.n_units)
        zeros = jnp.zeros(shape, dtype=self._dtype)
        self.j = Compartment(zeros, display_name="Current", units="pA")
        self.v = Compartment(self._v_init, display_name="Voltage", units="mV")
        self.w = Compartment(self._w_init, display_name="Recovery", units="pA")
        self.s = Compartment(zeros, display_name="Spikes")
        self.tols = Compartment(zeros, display_name="Time-of-Last-Spike", units="ms")
        self.t_spike = Compartment(zeros, display_name="Precise Time-of-Last-Spike", units="ms")
        self.ref_left = Compartment(zeros, display_name="Refractory Time Left", units="ms")
        if surrogate_type is not None:
            self.surrogate = Compartment(zeros, display_name="Surrogate State Value", units="1/mV")
        if self.receptor_names:
            ports = []
            for name, rec in zip(self.receptor_names, self._receptor_params):
                ports.append(Compartment(zeros, display_name=f"Receptor input: {name}",
                                         units="nS" if rec.e_rev is not None else "pA"))
                setattr(self, name, ports[-1])
            stacked = jnp.zeros((len(ports),) + shape, dtype=self._dtype)
            self.syn_in = PortInputs(ports, stacked)
            self.g_syn = Compartment(stacked, display_name="Receptor conductances", units="nS (pA: currents)")
            self.h_syn = Compartment(stacked, display_name="Receptor drives", units="nS/ms (pA/ms: currents)")

    # -- parameters as attributes (ngc-learn's names and ours) ----------------------------------------------
    tau_m = _parameter("tau_m", "membrane time constant (ms)")
    resist_m = R_m = _parameter("resist_m", "membrane resistance (1/g_L: GOhm with physical units)")
    tau_w = _parameter("tau_w", "adaptation time constant (ms)")
    v_sharpness = sharpV = _parameter("v_sharpness", "slope factor Delta_T (mV)")
    intrinsic_mem_thr = vT = _parameter("intrinsic_mem_thr", "threshold of the exponential term V_T (mV)")
    thr = _parameter("thr", "spike detection potential (mV)")
    v_rest = _parameter("v_rest", "resting potential E_L (mV)")
    v_reset = _parameter("v_reset", "reset potential (mV)")
    a = _parameter("a", "subthreshold adaptation coupling (nS with physical units)")
    b = _parameter("b", "spike-triggered adaptation increment (pA with physical units)")
    v0 = _parameter("v0", "initial / reset value of v (mV)")
    w0 = _parameter("w0", "initial / reset value of w")
    refract_time = _parameter("refract_time", "absolute refractory period (ms)")

    @property
    def integration_type(self):
        """The canonical name of the integrator (see :data:`ngc_adex.METHODS`)."""
        return _params.normalize_integrator(self._integration_arg)

    @integration_type.setter
    def integration_type(self, value):
        _params.normalize_integrator(value)
        self._integration_arg = value
        self._derived = None

    @property
    def integrationType(self):
        """The integrator's name as given (ngc-learn's attribute); writable."""
        return self._integration_arg

    @integrationType.setter
    def integrationType(self, value):
        self.integration_type = value

    @property
    def intgFlag(self):
        """ngc-learn's integer code of the integrator (0 euler, 1 midpoint, 2 heun, 3 ralston, 4 rk4;
        5 precise); writable."""
        return numerics.INTEGRATOR_CODES[self.integration_type]

    @intgFlag.setter
    def intgFlag(self, code):
        names = {v: k for k, v in numerics.INTEGRATOR_CODES.items()}
        if code not in names:
            raise ValueError(f"intgFlag must be one of {sorted(names)}, got {code!r}")
        self.integration_type = names[code]

    @staticmethod
    def _check_precise_times(value):
        if value not in (None, True, False):
            raise ValueError(f"precise_times must be True, False or None, got {value!r}")
        return value

    @property
    def precise_times(self):
        """Whether t_spike tracks the interpolated crossing time (default: every integrator but euler)."""
        arg = self._precise_times_arg
        return self.integration_type != "euler" if arg is None else arg

    @precise_times.setter
    def precise_times(self, value):
        self._precise_times_arg = self._check_precise_times(value)
        self._derived = None

    def _update(self, **changes):
        """Validates the parameters with ``changes`` applied, then adopts them."""
        raw = {**self._raw, **changes}
        _, _, self._values = _params.validate(self.n_units, self.batch_size, **raw)
        self._raw = raw
        self._derived = None

    @property
    def _dtype(self):
        return jnp.zeros(()).dtype  # float32, or float64 under jax_enable_x64

    @property
    def params(self):
        """The validated physiological parameters (:class:`~ngc_adex.numerics.AdExParams` of float64 arrays)."""
        return numerics.AdExParams(**{k: self._values[k] for k in numerics.AdExParams._fields})

    @property
    def _v_init(self):
        return self._initial("v0")

    @property
    def _w_init(self):
        return self._initial("w0")

    def _initial(self, name):
        value = np.clip(self._values[name], -numerics.STATE_BOUND, numerics.STATE_BOUND)
        return jnp.asarray(np.broadcast_to(value, (self.batch_size, self.n_units)), dtype=self._dtype)

    @property
    def step_fn(self):
        """The cell's pure update, ``step_fn(v, w, ref_left, s, tols, t_spike, j, t, dt)`` -> the new
        ``(v, w, ref_left, s, tols, t_spike)``: compartment arrays in, compartment arrays out, with the
        coefficients of the current parameters bound (a JAX function: jit, scan, vmap, grad, sharding).
        With receptor ports it also takes ``g_syn, h_syn, syn_in`` after ``dt`` and returns the new
        ``g_syn, h_syn`` last."""
        if self._derived is None:
            self.__dict__.pop("_ngc_adex_scans", None)  # simulate()'s compiled scans hold the old step
            self._derived = partial(
                _adex_step_receptors if self.receptor_names else _adex_step,
                coeffs=numerics.coefficients(self.params, self._dtype, self._receptor_params),
                method=self.integration_type, refractory=bool(np.any(self._values["refract_time"] > 0)),
                track_times=self.precise_times, surrogate=self.surrogate_type)
        return self._derived

    @compilable
    def advance_state(self, t, dt):
        if self.receptor_names:
            out = self.step_fn(
                self.v.get(), self.w.get(), self.ref_left.get(), self.s.get(), self.tols.get(),
                self.t_spike.get(), self.j.get(), t, dt, self.g_syn.get(), self.h_syn.get(), self.syn_in.get())
            self.g_syn.set(out[6])
            self.h_syn.set(out[7])
        else:
            out = self.step_fn(
                self.v.get(), self.w.get(), self.ref_left.get(), self.s.get(), self.tols.get(), self.t_spike.get(),
                self.j.get(), t, dt)
        self.v.set(out[0])
        self.w.set(out[1])
        self.ref_left.set(out[2])
        self.s.set(out[3])
        self.tols.set(out[4])
        self.t_spike.set(out[5])
        if self.surrogate_type is not None:
            self.surrogate.set(out[-1])

    @compilable
    def reset(self):
        rest = jnp.zeros((self.batch_size, self.n_units), dtype=self._dtype)
        if not self.j.targeted:
            self.j.set(rest)
        self.v.set(self._v_init)
        self.w.set(self._w_init)
        self.ref_left.set(rest)
        self.s.set(rest)
        self.tols.set(rest)
        self.t_spike.set(rest)
        if self.surrogate_type is not None:
            self.surrogate.set(rest)
        if self.receptor_names:
            self.g_syn.set(jnp.zeros((len(self.receptor_names),) + rest.shape, dtype=self._dtype))
            self.h_syn.set(jnp.zeros((len(self.receptor_names),) + rest.shape, dtype=self._dtype))

    def to_json(self):
        """Constructor arguments for ``Context.save_to_json``: the current
        parameters (attribute writes included), per-neuron arrays as lists (the
        PRNG key is restored from the saved state)."""
        self._args = (self.name, self.n_units)
        self._kwargs = {**{k: jsonable(v) for k, v in self._raw.items()},
                        "integration_type": self._integration_arg, "batch_size": self.batch_size,
                        "precise_times": self._precise_times_arg, "receptors": self._receptors_arg,
                        "surrogate_type": self.surrogate_type}
        return super().to_json()

    def load(self, directory):
        """Restores every saved compartment from ``directory/<name>.npz``;
        a missing, unreadable or incomplete file raises an error naming it.
        A checkpoint of ngc-learn's ``AdExCell`` (without ``t_spike`` and
        ``ref_left``) loads with those two at their reset value, 0."""
        path = os.path.join(directory, self.name + ".npz")
        saved = load_npz(self, directory)
        for comp_name, comp in self.compartments:
            if comp_name not in saved:
                if comp_name == "j" or comp_name in self.receptor_names or not comp.auto_save:  # wired inputs
                    continue
                if comp_name in _NOT_IN_BUILTIN:
                    comp.set(jnp.zeros((self.batch_size, self.n_units), dtype=self._dtype))
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
                 "<receptor name>": "One per receptor port: summed weights of the step's presynaptic spikes "
                                    "(nS for conductances, pA for currents)",
                 "key": "JAX PRNG key"},
            "states":
                {"v": "Membrane potential/voltage at time t",
                 "w": "Recovery/adaptation variable at time t",
                 "ref_left": "Refractory time still to serve at time t (ms)",
                 "g_syn": "Receptor conductances/currents at time t (receptor x batch x units; nS or pA)",
                 "h_syn": "Receptor drives of alpha/beta kinetics at time t (nS/ms or pA/ms)"},
            "outputs":
                {"s": "Emitted spikes/pulses in the step (t - dt, t]",
                 "tols": "Time-of-last-spike (t of the step that spiked)",
                 "t_spike": "Precise time of the last spike (threshold crossing interpolated inside the step)",
                 "surrogate": "With surrogate_type: the estimator's derivative ds/dv of the step's spikes (1/mV)"},
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
            "integration_type": "Integrator: euler/rk1, midpoint/rk2, heun/rk2_heun, ralston/rk2_ralston, rk4 "
                                "or precise",
            "receptors": "Synaptic receptor ports: list of {name, kind (exp/alpha/beta), tau_decay, tau_rise, "
                         "e_rev (mV; None = current)} or a NEST preset name (aeif_cond_exp, aeif_cond_alpha, "
                         "aeif_psc_exp, aeif_psc_alpha)",
            "surrogate_type": "Surrogate derivative of the spikes s for jax.grad: None (off), straight_through, "
                              "triangular, explicit_triangular, arctan or boxcar (ngc-learn's estimators)"
        }
        info = {cls.__name__: properties,
                "compartments": compartment_props,
                "dynamics": "tau_m * dv/dt = -(v - v_rest) + v_sharpness * exp((v - intrinsic_mem_thr)/v_sharpness) "
                            "- resist_m * w + resist_m * j - resist_m * sum_k g_k (v - e_rev_k) + resist_m * sum_k i_k; "
                            "tau_w * dw/dt = -w + a * (v - v_rest); "
                            "on crossing thr: v <- v_reset, w <- w + b, v held for refract_time",
                "hyperparameters": hyperparams}
        return info
