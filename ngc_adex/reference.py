"""High-accuracy, event-driven reference solver for the AdEx neuron (scipy, float64).

An independent ground truth for :class:`~ngc_adex.AdExCell`: the same model in
the physical (Brette-Gerstner / NEST) parameterisation, integrated with an
adaptive high-order solver that restarts exactly at every spike, so its spike
times are exact to ~1e-9 ms.  The test suite and ``benchmarks/`` judge every
integrator against it, and a user can check their own parameters the same way::

    from ngc_adex import preset
    from ngc_adex.reference import spike_times
    ref = spike_times(preset("adapting"), 500.)           # ms; or your own dict

Public API: :func:`simulate_reference`, :func:`spike_times`,
:func:`validate_params`, :func:`beta_peak_time`, and NEST's aeif test problem with its converged spike
times (:data:`NEST_PARAMS`, :data:`NEST_V0`, :data:`NEST_W0`, :data:`NEST_T`,
:data:`NEST_SPIKES`).  Needs scipy (``pip install ngc-adex[reference]``),
imported when a simulation runs; the tables import without it.

A cell built with ``preset_kwargs(name)`` or :func:`~ngc_adex.from_physical`
simulates the same model as ``p``; from ngc-learn's parameterisation,
``C = tau_m / resist_m``, ``gL = 1 / resist_m``, ``EL = v_rest``,
``VT = intrinsic_mem_thr``, ``DT = v_sharpness``, ``Vr = v_reset``,
``V_peak = thr``, ``a``, ``b``, ``tau_w`` unchanged (``resist_m > 0``).

Model (physical units: C pF, gL nS, EL/VT/DT/Vr/V_peak mV, a nS, tau_w ms,
b pA, I pA, t ms; pF/nS = ms, mV*nS = pA)::

    C dV/dt     = -gL (V - EL) + gL DT exp((V - VT)/DT) - w + I
                  - sum_k g_k(t) (V - E_k) + sum_j i_j(t)
    tau_w dw/dt = a (V - EL) - w

with optional synaptic receptors (``receptors=``, ``events=``; none by
default): conductances g_k (nS, reversal potential E_k) and currents i_j (pA),
each an "exp", "alpha" or "beta" (double exponential) response to events at
given times with given weights, as NEST's aeif_cond_exp, aeif_cond_alpha,
aeif_cond_beta_multisynapse, aeif_psc_exp and aeif_psc_alpha.  Between events
they are known sums of exponentials, evaluated exactly; the integration
restarts at every event time.

Spike when V reaches V_peak (DT > 0; V_peak <= VT allowed: detection below the
exponential's threshold) or min(V_peak, VT) (DT == 0, the integrate-and-fire
limit without the exponential term).  Then V <- Vr, w <- w + b.  With an
absolute refractory period t_ref > 0, V is held at Vr for exactly t_ref after
each spike while w relaxes with V = Vr (closed form).

Numerics
--------
Between events the ODE is integrated with ``scipy.integrate.solve_ivp``
(DOP853, dense output, rtol 1e-11 by default), restarting exactly at every
event.  Two charts are used for DT > 0:

* "V" chart, state (V, w), used while V < VT.  A terminal event at V = VT
  (upward) switches to the u chart.
* "u" chart, state (u, q), used while V >= VT - 2 DT (hysteresis), with

      u = exp(-(V - VT)/DT),            V = VT - DT ln u
      psi(u) = u ln u - u + 1,          d psi/dt = ln u du/dt
      kappa = a DT tau_m / tau_w,       tau_m = C/gL
      q = w - kappa psi(u),             w = q + kappa psi(u)

  Since exp((V-VT)/DT) = 1/u,

      du/dt = -(u/DT) dV/dt
            = -1/tau_m + u g,   g = -(-gL (V - EL) - w + I)/(DT C)
      dq/dt = dw/dt - kappa ln u du/dt
            = (a (VT - EL) - w)/tau_w - kappa (u ln u) g

  (the -a DT ln u / tau_w term of dw/dt cancels exactly against
  kappa ln u / tau_m).  V's finite-time blow-up becomes u decreasing almost
  linearly through u_peak = exp(-(V_peak - VT)/DT) > 0, and w's log
  singularity is removed, so the adaptive solver needs no pathological steps.
  The spike is the terminal event u = u_peak (downward); a terminal event
  u = exp(2) (upward, V = VT - 2 DT) switches back to the V chart.

Synaptic currents enter both charts through the non-exponential part of
C dV/dt (I above becomes I + sum_k g_k (E_k - V) + sum_j i_j), which leaves
the cancellation in dq/dt intact.

For DT == 0 the "V" chart is used with the linear right-hand side and a
terminal spike event at V = VT.

Sampled output is right-continuous: at a time equal to a spike time the
post-reset state is reported.  A spike that would fall at exactly t = T may
be missed by rounding (the run then ends a hair below the peak).

Measured accuracy: NEST's aeif problem is reproduced to < 5e-7 ms (its
6-decimal rounding); on the Naud 2008 patterns the spike times change by
< 2e-9 ms between rtol 1e-11 and 1e-13 or DOP853 and Radau (except the
chaotic "irregular" pattern, whose late spikes amplify rounding).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["simulate_reference", "spike_times", "validate_params", "beta_peak_time", "RECEPTOR_KINDS",
           "NEST_PARAMS", "NEST_V0", "NEST_W0", "NEST_T", "NEST_SPIKES"]

#: NEST's aeif test problem (the accuracy test of NEST's ``aeif_*`` models, compared there with a
#: stored high-accuracy LSODAR solution): physical parameters and the constant current ``I`` (pA)
NEST_PARAMS = dict(C=200.0, gL=11.0, EL=-70.0, VT=-50.0, DT=2.0, a=3.0, b=0.0, tau_w=300.0, Vr=-58.0,
                   V_peak=0.0, I=420.0)
#: its initial state (V0 in mV, w0 in pA) and duration (ms)
NEST_V0, NEST_W0, NEST_T = -70.0, 5.0, 100.0
#: its converged spike times (ms, 6 decimals), as NEST's test of that problem lists them;
#: :func:`spike_times` reproduces them to < 5e-7 ms
NEST_SPIKES = np.array([18.716048, 30.561900, 42.497086, 54.520117, 66.629454, 78.823515, 91.100673])
NEST_SPIKES.flags.writeable = False

_PARAM_KEYS = ("C", "gL", "EL", "VT", "DT", "a", "tau_w", "b", "Vr", "V_peak")
_U_BACK = math.exp(2.0)  # u chart -> V chart when V drops below VT - 2 DT
_MAX_SPIKES = 1_000_000


def _solve_ivp():
    """scipy's ``solve_ivp``, imported on first use: scipy is an optional dependency."""
    try:
        from scipy.integrate import solve_ivp
    except ImportError as exc:
        raise ImportError("ngc_adex.reference needs scipy: pip install ngc-adex[reference] "
                          "(or pip install scipy)") from exc
    return solve_ivp


def validate_params(p: dict, t_ref: float = 0.0) -> dict:
    """Checks a set of physical AdEx parameters and returns them as floats.

    Args:
        p: dict with the keys C (pF), gL (nS), EL (mV), VT (mV), DT (mV),
            a (nS), tau_w (ms), b (pA), Vr (mV) and V_peak (mV), as returned
            by :func:`~ngc_adex.preset`; other keys (e.g. I) are ignored

        t_ref: absolute refractory period (ms; Default: 0)

    Returns:
        a new dict of the ten parameters as Python floats

    Raises:
        KeyError naming the missing parameters; ValueError for C <= 0,
        gL <= 0, tau_w <= 0, DT < 0, t_ref < 0, Vr not below the spike
        potential, or a non-finite value
    """
    missing = [k for k in _PARAM_KEYS if k not in p]
    if missing:
        raise KeyError(f"missing AdEx parameters: {missing}")
    q = {k: float(p[k]) for k in _PARAM_KEYS}
    if not q["C"] > 0:
        raise ValueError("C must be > 0")
    if not q["gL"] > 0:
        raise ValueError("gL must be > 0")
    if not q["tau_w"] > 0:
        raise ValueError("tau_w must be > 0")
    if not q["DT"] >= 0:
        raise ValueError("DT must be >= 0")
    if not t_ref >= 0:
        raise ValueError("t_ref must be >= 0")
    threshold = q["V_peak"] if q["DT"] > 0 else min(q["V_peak"], q["VT"])
    if not q["Vr"] < threshold:
        raise ValueError("Vr must be below the spike potential")
    for k, v in q.items():
        if not math.isfinite(v):
            raise ValueError(f"parameter {k} is not finite")
    return q


class _Current:
    """I(t): a constant, or a callable with optional breakpoints."""

    def __init__(self, I, breaks):
        if callable(I):
            self.fun: Callable[[float], float] | None = I
            self.const = None
        else:
            self.fun = None
            self.const = float(I)
        self.breaks = sorted(float(b) for b in (breaks or ()))

    def __call__(self, t):
        if self.fun is None:
            return self.const
        return float(self.fun(t))

    def next_break(self, t, T):
        for b in self.breaks:
            if b > t:
                return min(b, T)
        return T


RECEPTOR_KINDS = ("exp", "alpha", "beta")
_RECEPTOR_KEYS = ("kind", "tau_decay", "tau_rise", "E_rev")


def _phi(s, delta):
    """(1 - exp(-s delta)) / delta, and its limit s for delta == 0, without cancellation."""
    if delta == 0.0:
        return s
    return -np.expm1(-s * delta) / delta


def beta_peak_time(tau_rise: float, tau_decay: float) -> float:
    """Time (ms) of the peak of the double exponential ``exp(-t/tau_decay) - exp(-t/tau_rise)``.

    ``t_p = tau_decay tau_rise ln(tau_decay/tau_rise) / (tau_decay - tau_rise)`` (NEST's
    aeif_cond_beta_multisynapse), evaluated as ``tau_decay log1p(x)/x``, ``x = (tau_decay -
    tau_rise)/tau_rise``, so that it tends smoothly to ``tau_decay`` (the alpha function's peak)
    as ``tau_rise -> tau_decay``; ``tau_decay`` exactly for equal time constants.
    """
    tau_rise, tau_decay = float(tau_rise), float(tau_decay)
    x = (tau_decay - tau_rise) / tau_rise
    return tau_decay if x == 0.0 else tau_decay * math.log1p(x) / x


class _Receptors:
    """Validated receptors with their event-driven states, exact between events.

    Each receptor has a state (g, h): ``dg/dt = h - g/tau_decay``, ``dh/dt = -h/tau_rise``
    (h == 0 for kind "exp"; tau_rise = tau_decay for "alpha"), so between events, s after
    an anchor state (g_a, h_a),

        h(s) = h_a exp(-s/tau_rise)
        g(s) = exp(-s/tau_decay) (g_a + h_a phi(s)),  phi(s) = (1 - exp(-s delta))/delta,
        delta = 1/tau_rise - 1/tau_decay >= 0  (phi(s) = s for delta == 0).

    An event of weight q adds q to g ("exp"), q e/tau_decay to h ("alpha": peak q at
    tau_decay) or q/K(t_p) to h ("beta", K(s) = exp(-s/tau_decay) phi(s) the response to a
    unit h: peak q at t_p, NEST's normalisation).  The states right after every distinct
    event time (the anchors) are computed once, exactly up to rounding.
    """

    def __init__(self, receptors, events, T):
        receptors = [] if receptors is None else list(receptors)
        if events is None:
            events = [(np.empty(0), np.empty(0))] * len(receptors)
        events = list(events)
        if len(events) != len(receptors):
            raise ValueError(f"events must have one (times, weights) pair per receptor: got {len(events)} "
                             f"for {len(receptors)} receptors")
        self.n = len(receptors)
        self.tau_d, self.inv_tr, self.delta, self.jump_h, self.E = [], [], [], [], []
        self.is_exp = []
        times_k, weights_k = [], []
        for k, r in enumerate(receptors):
            name = f"receptors[{k}]"
            if not isinstance(r, dict):
                raise ValueError(f"{name} must be a dict with the keys kind, tau_decay, (tau_rise), E_rev")
            unknown = sorted(set(r) - set(_RECEPTOR_KEYS))
            if unknown:
                raise ValueError(f"{name}: unknown keys {unknown} (allowed: {list(_RECEPTOR_KEYS)})")
            kind = r.get("kind", "exp")
            if kind not in RECEPTOR_KINDS:
                raise ValueError(f"{name}['kind'] must be one of {RECEPTOR_KINDS}, got {kind!r}")
            if "E_rev" not in r:
                raise ValueError(f"{name}['E_rev'] is required: the reversal potential (mV) of a "
                                 f"conductance receptor, or None for a current receptor")
            if "tau_decay" not in r:
                raise ValueError(f"{name}['tau_decay'] (ms) is required")
            tau_d = float(r["tau_decay"])
            if not (math.isfinite(tau_d) and tau_d > 0):
                raise ValueError(f"{name}['tau_decay'] must be finite and > 0, got {r['tau_decay']!r}")
            if kind == "beta":
                if "tau_rise" not in r:
                    raise ValueError(f"{name}['tau_rise'] (ms) is required for kind 'beta'")
                tau_r = float(r["tau_rise"])
                if not (math.isfinite(tau_r) and tau_r > 0):
                    raise ValueError(f"{name}['tau_rise'] must be finite and > 0, got {r['tau_rise']!r}")
                if not tau_r <= tau_d:
                    raise ValueError(f"{name}: tau_rise ({tau_r}) must be <= tau_decay ({tau_d})")
            elif "tau_rise" in r:
                raise ValueError(f"{name}['tau_rise'] is only for kind 'beta' (kind is {kind!r})")
            else:
                tau_r = tau_d
            E = r["E_rev"]
            if E is not None:
                E = float(E)
                if not math.isfinite(E):
                    raise ValueError(f"{name}['E_rev'] must be finite (or None for a current receptor)")
            delta = 0.0 if tau_r == tau_d else 1.0 / tau_r - 1.0 / tau_d
            if kind == "exp":
                jump = 1.0
            else:
                t_p = beta_peak_time(tau_r, tau_d)
                jump = 1.0 / (math.exp(-t_p / tau_d) * _phi(t_p, delta))
            self.tau_d.append(tau_d)
            self.inv_tr.append(1.0 / tau_r)
            self.delta.append(delta)
            self.jump_h.append(jump)
            self.E.append(E)
            self.is_exp.append(kind == "exp")

            ev = events[k]
            try:
                t_ev, w_ev = ev
            except (TypeError, ValueError):
                raise ValueError(f"events[{k}] must be a (times, weights) pair") from None
            t_ev = np.atleast_1d(np.asarray(t_ev, dtype=np.float64)).ravel()
            w_ev = np.asarray(w_ev, dtype=np.float64)
            if w_ev.ndim == 0:
                w_ev = np.full(t_ev.shape, float(w_ev))
            w_ev = w_ev.ravel()
            if w_ev.shape != t_ev.shape:
                raise ValueError(f"events[{k}]: {t_ev.size} times but {w_ev.size} weights")
            if not np.all(np.isfinite(t_ev)) or np.any(t_ev < 0):
                raise ValueError(f"events[{k}] times must be finite and >= 0 (ms)")
            if not np.all(np.isfinite(w_ev)):
                raise ValueError(f"events[{k}] weights must be finite")
            if E is not None and np.any(w_ev < 0):
                raise ValueError(f"events[{k}] weights must be >= 0 (nS) for a conductance receptor "
                                 f"(receptors[{k}] has E_rev = {E}); use a receptor with a lower E_rev "
                                 f"for inhibition")
            keep = t_ev <= T  # events after T have no effect on [0, T]
            times_k.append(t_ev[keep])
            weights_k.append(w_ev[keep])

        self.t_anchor = np.unique(np.concatenate(times_k)) if self.n else np.empty(0)
        n_a = len(self.t_anchor)
        inc = np.zeros((self.n, n_a))
        for k in range(self.n):
            np.add.at(inc[k], np.searchsorted(self.t_anchor, times_k[k]), weights_k[k])
        # anchor states right after each distinct event time
        self.g_a = np.zeros((self.n, n_a))
        self.h_a = np.zeros((self.n, n_a))
        for k in range(self.n):
            g = h = 0.0
            t_prev = 0.0
            tau_d, inv_tr, delta = self.tau_d[k], self.inv_tr[k], self.delta[k]
            for j in range(n_a):
                s = self.t_anchor[j] - t_prev
                if s > 0:
                    g = math.exp(-s / tau_d) * (g + h * _phi(s, delta))
                    h = h * math.exp(-s * inv_tr)
                if self.is_exp[k]:
                    g += inc[k, j]
                else:
                    h += inc[k, j] * self.jump_h[k]
                self.g_a[k, j], self.h_a[k, j] = g, h
                t_prev = self.t_anchor[j]
        self.cond = [k for k in range(self.n) if self.E[k] is not None]
        self.curr = [k for k in range(self.n) if self.E[k] is None]

    def next_break(self, t, T):
        """The first event time after t (or T)."""
        j = np.searchsorted(self.t_anchor, t, side="right")
        return min(float(self.t_anchor[j]), T) if j < len(self.t_anchor) else T

    def segment(self, t):
        """syn(t', v): the synaptic current (pA) for t' from t up to the next event, or None."""
        if self.n == 0:
            return None
        j = int(np.searchsorted(self.t_anchor, t, side="right")) - 1
        if j < 0:
            return None  # nothing received yet
        t_a = float(self.t_anchor[j])
        terms = [(self.tau_d[k], self.delta[k], float(self.g_a[k, j]), float(self.h_a[k, j]), self.E[k])
                 for k in range(self.n) if self.g_a[k, j] != 0.0 or self.h_a[k, j] != 0.0]
        exp, expm1 = math.exp, math.expm1

        def syn(tt, v):
            s = tt - t_a
            total = 0.0
            for tau_d, delta, g_a, h_a, E in terms:
                phi = s if delta == 0.0 else -expm1(-s * delta) / delta
                g = exp(-s / tau_d) * (g_a + h_a * phi)
                total += g if E is None else g * (E - v)
            return total

        return syn

    def values(self, tq):
        """Receptor states g_k at the times tq: array (n_receptors, len(tq)), right-continuous."""
        tq = np.atleast_1d(np.asarray(tq, dtype=np.float64))
        out = np.zeros((self.n, tq.size))
        if self.n == 0 or len(self.t_anchor) == 0:
            return out
        j = np.searchsorted(self.t_anchor, tq, side="right") - 1
        got = j >= 0
        jj = j[got]
        s = tq[got] - self.t_anchor[jj]
        for k in range(self.n):
            out[k, got] = np.exp(-s / self.tau_d[k]) * (self.g_a[k, jj] + self.h_a[k, jj] * _phi(s, self.delta[k]))
        return out

    def current(self, g, v):
        """Total synaptic current (pA) from receptor states g (n_receptors, n) at potentials v."""
        i = np.zeros(np.shape(v))
        for k in self.cond:
            i = i + g[k] * (self.E[k] - v)
        for k in self.curr:
            i = i + g[k]
        return i


def simulate_reference(
    p: dict,
    T: float,
    I=None,
    v0=None,
    w0: float = 0.0,
    t_ref: float = 0.0,
    t_eval=None,
    *,
    rtol: float = 1e-11,
    atol_scale: float = 1.0,
    I_breaks=None,
    method: str = "DOP853",
    receptors=None,
    events=None,
) -> dict:
    """Simulates one AdEx neuron on [0, T] ms to near machine accuracy.

    Solves ``C dV/dt = -gL (V - EL) + gL DT exp((V - VT)/DT) - w + I``,
    ``tau_w dw/dt = a (V - EL) - w`` with the reset ``V <- Vr, w <- w + b``
    when V reaches V_peak (at ``min(V_peak, VT)`` for DT = 0), holding V at Vr
    for ``t_ref`` after each spike (see the module docstring for the method).

    Args:
        p: physical parameters: dict with the keys C (pF), gL (nS), EL (mV),
            VT (mV), DT (mV), a (nS), tau_w (ms), b (pA), Vr (mV), V_peak (mV)
            and optionally I (pA, constant from t = 0), e.g. :func:`~ngc_adex.preset`

        T: duration (ms)

        I: input current (pA), overrides ``p["I"]``: a number (constant from
            t = 0) or a callable ``I(t)`` of t in ms; for a callable with
            discontinuities pass their times in ``I_breaks`` so that the
            integration restarts there (Default: ``p.get("I", 0)``)

        v0: initial membrane potential (mV; Default: EL)

        w0: initial adaptation current (pA; Default: 0)

        t_ref: absolute refractory period (ms; Default: 0)

        t_eval: optional sample times (ms) in [0, T]; the sampled state is
            right-continuous (post-reset at a spike time)

        rtol: relative tolerance of ``scipy.integrate.solve_ivp`` (Default: 1e-11)

        atol_scale: multiplies the absolute tolerances (1e-12 mV for V,
            1e-11 pA for w, 1e-14 for the transformed variable u)

        I_breaks: times (ms) at which a callable ``I`` jumps

        method: the ``solve_ivp`` method (Default: "DOP853")

        receptors: optional synaptic receptors, a sequence of dicts, each with
            "kind": "exp", "alpha" or "beta" (Default "exp");
            "tau_decay": decay time constant (ms, > 0);
            "tau_rise": rise time constant (ms, 0 < tau_rise <= tau_decay;
            "beta" only, equal time constants give the alpha function);
            "E_rev": reversal potential (mV) of a conductance receptor, whose
            weights are conductances (nS, >= 0) and which adds
            ``-g_k(t) (V - E_rev)`` to ``C dV/dt``, or None for a current
            receptor, whose weights are currents (pA, any sign) and which
            adds ``+i_k(t)``.  An event of weight q adds q to g ("exp",
            which then decays with tau_decay), or starts a response with
            peak q: ``q (t/tau) e^(1 - t/tau)`` ("alpha", peak at tau =
            tau_decay; NEST's aeif_cond_alpha / aeif_psc_alpha) or the
            double exponential normalised to peak q at
            ``t_p = tau_decay tau_rise ln(tau_decay/tau_rise)/(tau_decay - tau_rise)``
            ("beta", NEST's aeif_cond_beta_multisynapse).  The receptors
            are exact (sums of exponentials between events), evolve during
            the refractory clamp, and are not changed by spikes.

        events: with ``receptors``, one ``(times, weights)`` pair per
            receptor: event times (ms, >= 0; those after T are ignored) and
            weights (nS or pA; a scalar applies to every event).  An event
            at t_e changes the receptor state at t_e (right-continuous;
            events at equal times add up) and the integration restarts
            there.  (Default: no events)

    Returns:
        dict with "spikes" (spike times, ms), "t", "v" (mV), "w" (pA),
        "g" (array (len(receptors), len(t)): receptor conductances g_k in
        nS, or currents i_k in pA for current receptors) and "i_syn" (the
        total synaptic current ``sum g_k (E_k - V) + sum i_k``, pA) (float64
        arrays at ``t_eval``; empty when t_eval is None), "state": a
        function t -> (V, w) valid on [0, T] (vectorised, right-continuous)
        and "receptor_state": a function t -> g (array (len(receptors),
        len(t)), right-continuous)

    Raises:
        see :func:`validate_params`; ValueError for T < 0, or for invalid
        receptors or events (naming the receptor / events entry); ImportError
        without scipy
    """
    prm = validate_params(p, t_ref)
    solve_ivp = _solve_ivp()
    C, gL, EL, VT, DT = prm["C"], prm["gL"], prm["EL"], prm["VT"], prm["DT"]
    a, tau_w, b, Vr, V_peak = prm["a"], prm["tau_w"], prm["b"], prm["Vr"], prm["V_peak"]
    T = float(T)
    t_ref = float(t_ref)
    if not T >= 0:
        raise ValueError("T must be >= 0")
    if I is None:
        I = p.get("I", 0.0)
    cur = _Current(I, I_breaks)
    rec = _Receptors(receptors, events, T)
    V = EL if v0 is None else float(v0)
    w = float(w0)

    tau_m = C / gL
    kappa = a * DT * tau_m / tau_w
    expo = DT > 0
    if expo:
        x_peak = (V_peak - VT) / DT
        u_peak = math.exp(-max(x_peak, 0.))  # may underflow to 0 for absurd V_peak
        ln_floor = math.log(max(u_peak * 1e-3, 1e-300))
        threshold = V_peak
    else:
        threshold = min(V_peak, VT)
    # the V chart's terminal event: VT (the u chart takes over), or the spike where it comes first
    v_switch = min(VT, threshold)
    spike_in_v_chart = not expo or threshold <= VT
    atol_V = 1e-12 * atol_scale
    atol_w = 1e-11 * atol_scale
    atol_u = 1e-14 * atol_scale

    # ---------------------------------------------------------------- RHS
    syn = None  # the synaptic current (pA) of the current inter-event segment: syn(t, V)

    def drive(t, v):  # I(t) plus the synaptic current
        return cur(t) if syn is None else cur(t) + syn(t, v)

    def rhs_V(t, y):
        v, ww = y[0], y[1]
        dv = -gL * (v - EL) - ww + drive(t, v)
        if expo:
            dv += gL * DT * math.exp(min((v - VT) / DT, 300.0))
        return [dv / C, (a * (v - EL) - ww) / tau_w]

    def _lnu(u):
        # smooth for u > 0; continuous linear extension far beyond the spike
        return math.log(u) if u > 0 and math.log(u) > ln_floor else ln_floor

    def rhs_u(t, y):
        u, q = y[0], y[1]
        lu = _lnu(u)
        ulu = u * lu
        ww = q + kappa * (ulu - u + 1.0)
        v = VT - DT * lu
        g = -(-gL * (v - EL) - ww + drive(t, v)) / (DT * C)
        return [-1.0 / tau_m + u * g, (a * (VT - EL) - ww) / tau_w - kappa * ulu * g]

    def u_to_Vw(u, q):
        u = np.asarray(u, dtype=float)
        lu = np.log(np.maximum(u, 1e-300))
        return VT - DT * lu, q + kappa * (u * lu - u + 1.0)

    # ------------------------------------------------------------ events
    def ev_switch_up(t, y):  # V chart: V reaches VT (or the spike potential below it)
        return y[0] - v_switch

    ev_switch_up.terminal = True
    ev_switch_up.direction = 1.0

    def ev_spike_u(t, y):  # u chart: u reaches u_peak
        return y[0] - u_peak

    ev_spike_u.terminal = True
    ev_spike_u.direction = -1.0

    def ev_back(t, y):  # u chart: V falls to VT - 2 DT
        return y[0] - _U_BACK

    ev_back.terminal = True
    ev_back.direction = 1.0

    # --------------------------------------------------------- main loop
    segments = []  # (t0, t1, kind, payload)
    spikes = []
    t = 0.0
    refractory_until = None

    def do_spike(ts, w_pre):
        spikes.append(ts)
        if len(spikes) > _MAX_SPIKES:
            raise RuntimeError("too many spikes")
        return Vr, w_pre + b

    while True:
        if refractory_until is not None:
            t1 = min(refractory_until, T)
            w_inf = a * (Vr - EL)
            segments.append((t, t1, "ref", (t, w, w_inf)))
            w = w_inf + (w - w_inf) * math.exp(-(t1 - t) / tau_w)
            t = t1
            V = Vr
            refractory_until = None
            if t >= T:
                break
            continue
        if V >= threshold:
            V, w = do_spike(t, w)
            if t_ref > 0:
                refractory_until = t + t_ref
            continue
        if t >= T:
            break
        t_end = min(cur.next_break(t, T), rec.next_break(t, T))
        syn = rec.segment(t)
        if expo and V >= VT:
            # u chart
            u0 = math.exp(-(V - VT) / DT)
            q0 = w - kappa * (u0 * math.log(u0) - u0 + 1.0)
            sol = solve_ivp(
                rhs_u, (t, t_end), [u0, q0], method=method, rtol=rtol,
                atol=[atol_u, atol_w], dense_output=True,
                events=[ev_spike_u, ev_back],
            )
            if sol.status < 0:
                raise RuntimeError(f"solve_ivp failed: {sol.message}")
            t1 = float(sol.t[-1])
            segments.append((t, t1, "u", sol.sol))
            if sol.status == 1 and len(sol.t_events[0]):
                ts = float(sol.t_events[0][0])
                u_s, q_s = sol.y_events[0][0]
                _, w_s = u_to_Vw(u_peak, q_s)
                V, w = do_spike(ts, float(w_s))
                t = ts
                if t_ref > 0:
                    refractory_until = t + t_ref
                continue
            u1, q1 = sol.y[:, -1]
            if sol.status == 1:  # switched back below VT - 2 DT
                u1 = _U_BACK
            V, w = (float(x) for x in u_to_Vw(u1, q1))
            t = t1
            continue
        # V chart
        sol = solve_ivp(
            rhs_V, (t, t_end), [V, w], method=method, rtol=rtol,
            atol=[atol_V, atol_w], dense_output=True, events=[ev_switch_up],
        )
        if sol.status < 0:
            raise RuntimeError(f"solve_ivp failed: {sol.message}")
        t1 = float(sol.t[-1])
        segments.append((t, t1, "V", sol.sol))
        V, w = float(sol.y[0, -1]), float(sol.y[1, -1])
        t = t1
        if sol.status == 1:
            V = v_switch  # exactly on the switching / threshold surface
            if spike_in_v_chart:
                V, w = do_spike(t, w)
                if t_ref > 0:
                    refractory_until = t + t_ref
        # loop continues: either threshold handling, u chart or next break

    # A spike at exactly T (t_ref == 0) has no segment after it: add a
    # constant tail so sampling at T gives the post-reset state.
    if not segments or (spikes and spikes[-1] >= segments[-1][1]
                        and segments[-1][2] != "ref"):
        segments.append((t, t, "const", (V, w)))

    # -------------------------------------------------------- sampling
    seg_t0 = np.array([s[0] for s in segments], dtype=float)

    def state(tq):
        tq = np.atleast_1d(np.asarray(tq, dtype=float))
        vv = np.empty_like(tq)
        ww = np.empty_like(tq)
        # right-continuous: the last segment starting at or before t;
        # zero-length segments are skipped by taking the last one.
        idx = np.searchsorted(seg_t0, tq, side="right") - 1
        idx = np.clip(idx, 0, len(segments) - 1)
        for k in np.unique(idx):
            m = idx == k
            t0, t1, kind, pay = segments[k]
            tk = np.clip(tq[m], t0, t1)
            if kind == "V":
                y = pay(tk)
                vv[m], ww[m] = y[0], y[1]
            elif kind == "u":
                y = pay(tk)
                vv[m], ww[m] = u_to_Vw(y[0], y[1])
            elif kind == "const":
                vv[m], ww[m] = pay
            else:  # refractory clamp
                ts0, wst, w_inf = pay
                vv[m] = Vr
                ww[m] = w_inf + (wst - w_inf) * np.exp(-(tk - ts0) / tau_w)
        return vv, ww

    if t_eval is None:
        t_out = np.empty(0)
        v_out = np.empty(0)
        w_out = np.empty(0)
    else:
        t_out = np.asarray(t_eval, dtype=np.float64).ravel()
        v_out, w_out = state(t_out)
    g_out = rec.values(t_out)
    return {
        "spikes": np.asarray(spikes, dtype=np.float64),
        "t": t_out,
        "v": np.asarray(v_out, dtype=np.float64),
        "w": np.asarray(w_out, dtype=np.float64),
        "g": g_out,
        "i_syn": np.asarray(rec.current(g_out, v_out), dtype=np.float64),
        "state": state,
        "receptor_state": rec.values,
    }


def spike_times(p: dict, T: float, **kw) -> np.ndarray:
    """Spike times of one AdEx neuron on [0, T] ms: :func:`simulate_reference`'s "spikes".

    Args:
        p: physical parameters (see :func:`simulate_reference`)

        T: duration (ms)

        **kw: the keyword arguments of :func:`simulate_reference` (I, v0,
            w0, t_ref, rtol, receptors, events, ...; t_eval is ignored)

    Returns:
        float64 array of spike times (ms)
    """
    kw.pop("t_eval", None)
    return simulate_reference(p, T, **kw)["spikes"]
