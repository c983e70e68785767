"""Parameter validation, physical units and published presets.

ngc-learn's parameterisation relates to the physical (Brette-Gerstner / NEST)
one by ``tau_m = C/g_L`` (ms), ``resist_m = 1/g_L`` (GOhm, so currents in pA
give mV), ``v_sharpness = Delta_T``, ``intrinsic_mem_thr = V_T``,
``thr = V_peak``, ``v_rest = E_L``, ``v_reset = V_reset``, ``a`` in nS,
``b`` and ``w`` in pA, ``tau_w`` in ms, ``refract_time = t_ref`` (ms).
"""
import json
import numbers
from importlib import resources

import numpy as np

from .numerics import AdExParams, METHOD_ALIASES

#: largest magnitude any value may have: finite in float32 (the cell's default precision)
MAX_MAGNITUDE = float(np.finfo(np.float32).max)
#: smallest positive time constant or slope factor: the smallest normal float32, whose
#: reciprocal is finite
MIN_POSITIVE = float(np.finfo(np.float32).tiny)

#: the parameters that may differ from neuron to neuron
PER_NEURON = AdExParams._fields + ("v0", "w0")


def _check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _as_array(name, value, shape):
    bad = ValueError(f"{name} must be a finite number or an array of numbers broadcastable to {shape}, "
                     f"got {value!r}")
    if isinstance(value, (str, bytes)) or value is None:
        raise bad
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):  # e.g. ragged nested lists
        raise bad from None
    if raw.dtype.kind not in "iuf":  # no strings, bools or objects
        raise bad
    arr = raw.astype(np.float64)
    try:
        np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(f"{name} has shape {arr.shape}, which does not broadcast to "
                         f"(batch_size, n_units) = {shape}") from None
    if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > MAX_MAGNITUDE):
        raise ValueError(f"{name} must be finite (|{name}| <= {MAX_MAGNITUDE:.4g}, the float32 range), "
                         f"got {value!r}")
    return arr


def _require(cond, message):
    if not np.all(cond):
        raise ValueError(message)


def normalize_integrator(integration_type):
    """The canonical integrator name for ``integration_type``, or a ValueError
    listing the accepted names."""
    if not isinstance(integration_type, str) or integration_type.lower() not in METHOD_ALIASES:
        raise ValueError(f"integration_type must be one of {sorted(METHOD_ALIASES)}, "
                         f"got {integration_type!r}")
    return METHOD_ALIASES[integration_type.lower()]


def validate(n_units, batch_size, **values):
    """Checks every constructor value of :class:`~ngc_adex.AdExCell`.

    Args:
        n_units: number of neurons (positive int)

        batch_size: batch dimension (positive int)

        **values: the physiological parameters (:data:`PER_NEURON`), each a
            number or an array broadcastable to ``(batch_size, n_units)``

    Returns:
        (n_units, batch_size, dict of float64 arrays)

    Raises:
        ValueError naming the parameter and its allowed range
    """
    n_units = _check_count("n_units", n_units)
    batch_size = _check_count("batch_size", batch_size)
    shape = (batch_size, n_units)
    p = {name: _as_array(name, values[name], shape) for name in PER_NEURON}
    for name in ("tau_m", "tau_w"):
        _require(p[name] >= MIN_POSITIVE, f"{name} must be > 0 ms (>= {MIN_POSITIVE:.4g}), got {values[name]!r}")
    _require(p["resist_m"] >= 0, f"resist_m must be >= 0 (0: input disconnected), got {values['resist_m']!r}")
    sharp = p["v_sharpness"]
    _require((sharp == 0) | (sharp >= MIN_POSITIVE),
             f"v_sharpness must be 0 (integrate-and-fire limit) or > 0 mV (>= {MIN_POSITIVE:.4g}), "
             f"got {values['v_sharpness']!r}")
    _require(p["refract_time"] >= 0, f"refract_time must be >= 0 ms, got {values['refract_time']!r}")
    return n_units, batch_size, p


# ----------------------------------------------------------------------------
# physical units and presets
# ----------------------------------------------------------------------------
def from_physical(C, g_L, E_L, V_T, Delta_T, V_reset, V_peak, a, tau_w, b, t_ref=0.):
    """ngc-learn constructor arguments of :class:`~ngc_adex.AdExCell` from
    Brette-Gerstner / NEST parameters; input current ``j`` is then in pA.

    Args:
        C: membrane capacitance (pF)

        g_L: leak conductance (nS)

        E_L: leak reversal / resting potential (mV)

        V_T: threshold of the exponential term (mV)

        Delta_T: slope factor (mV); 0 gives the integrate-and-fire limit

        V_reset: reset potential (mV)

        V_peak: spike detection potential (mV)

        a: subthreshold adaptation (nS)

        tau_w: adaptation time constant (ms)

        b: spike-triggered adaptation increment (pA)

        t_ref: absolute refractory period (ms; Default: 0)

    Returns:
        dict of keyword arguments (tau_m, resist_m, ..., v0 = E_L, w0 = 0)
    """
    _require(np.asarray(C, dtype=np.float64) > 0, f"C must be > 0 pF, got {C!r}")
    _require(np.asarray(g_L, dtype=np.float64) > 0, f"g_L must be > 0 nS, got {g_L!r}")
    C, g_L = np.asarray(C, dtype=np.float64), np.asarray(g_L, dtype=np.float64)
    def out(x):
        x = np.asarray(x, dtype=np.float64)
        return float(x) if x.ndim == 0 else x.tolist()
    return dict(tau_m=out(C / g_L), resist_m=out(1. / g_L), tau_w=out(tau_w), v_sharpness=out(Delta_T),
                intrinsic_mem_thr=out(V_T), thr=out(V_peak), v_rest=out(E_L), v_reset=out(V_reset),
                a=out(a), b=out(b), v0=out(E_L), w0=0., refract_time=out(t_ref))


def _load_presets():
    text = resources.files("ngc_adex").joinpath("data/presets.json").read_text()
    return json.loads(text)["patterns"]


_PRESETS = _load_presets()
#: names of the bundled presets: the eight Naud et al. (2008) firing patterns
#: and the Brette & Gerstner (2005) regular-spiking set
PRESETS = tuple(_PRESETS)
#: the eight firing patterns of Naud et al. (2008), Fig. 4a-h, in order: the presets whose
#: "fig" in data/presets.json is "Naud 2008 Fig 4<letter>"
NAUD_PATTERNS = tuple(sorted((name for name, p in _PRESETS.items() if p.get("fig", "").startswith("Naud 2008 Fig 4")),
                             key=lambda name: _PRESETS[name]["fig"]))


def preset(name):
    """Physical parameters of a bundled preset (C, gL, EL, VT, DT, a, tau_w, b,
    Vr, V_peak and the stimulus current I in pA of the published protocol).

    References:
        Naud, Marcille, Clopath & Gerstner (2008) Biol Cybern 99:335-347.
        Brette & Gerstner (2005) J Neurophysiol 94:3637-3642.
    """
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return {k: float(v) for k, v in _PRESETS[name].items() if k != "fig"}


def preset_kwargs(name, t_ref=0.):
    """:class:`~ngc_adex.AdExCell` keyword arguments of a bundled preset
    (current in pA); see :func:`preset`."""
    p = preset(name)
    return from_physical(C=p["C"], g_L=p["gL"], E_L=p["EL"], V_T=p["VT"], Delta_T=p["DT"],
                         V_reset=p["Vr"], V_peak=p["V_peak"], a=p["a"], tau_w=p["tau_w"], b=p["b"],
                         t_ref=t_ref)
