"""Spike-train analysis: intervals, adaptation, bursts, a firing-pattern
classifier calibrated on the Naud et al. (2008) patterns, and f-I curves.

Every spike-train function takes a 1-D sequence of spike times in ms (any
order; it is sorted), measured from the stimulus onset at t = 0, and uses
numpy only. The last section (:func:`simulate_patterns`, :func:`fi_curve`)
runs :class:`~ngc_adex.AdExCell` simulations; it imports the simulator lazily.

Classifier labels (:data:`LABELS`), decided in this order by :func:`classify`:

1. ``"silent"``: no spike.
2. ``"transient"``: the last spike comes before ``transient_fraction`` (0.5)
   of the duration: the cell fires at onset, then stops.
3. ``"sparse"``: one or two spikes, not all early (too few intervals to judge).
4. The *delay* is noted: the first-spike latency exceeds ``delay_ratio`` (2)
   times the mean inter-spike interval (ISI), i.e. the first spike takes much
   longer than every later one. Being relative to the ISI, this does not
   depend on the duration of the run.
5. Bursts are found by :func:`detect_bursts` (a gap in the ISI distribution).
   Two or more regularly spaced bursts (CV of the burst periods below
   ``burst_period_cv`` = 0.3) holding at least half the spikes give
   ``"regular_bursting"``; a single burst that opens the train gives
   ``"initial_burst"``.
6. Otherwise ``"irregular"`` when the local variation CV2 (:func:`cv2`) of
   the ISIs exceeds ``irregular_cv2`` (0.5). CV2 is used rather than the
   global ISI CV, which is also large for a monotonically adapting train.
7. Otherwise the adaptation index A (:func:`adaptation_index`) decides:
   ``"tonic"`` when ``|A| <= tonic_band`` (0.003), else ``"adapting"`` for
   A > 0 and ``"accelerating"`` for A < 0. The band is narrow because A is a
   mean over all steady-state intervals: a slow acceleration such as Naud's
   Fig. 4e (ISIs 20 -> 11 ms over 35 spikes) has A of only about -0.006,
   while a tonic train's A is ~1e-4 or less.
8. A delayed train is labelled ``"delayed_accelerating"`` or
   ``"delayed_regular_bursting"`` when its pattern is accelerating or regular
   bursting, and ``"delayed"`` for any other pattern.

:data:`EXPECTED_LABELS` maps every bundled preset to the label it must get
with its published stimulus (500 ms, dt = 0.1 ms, ``integration_type="precise"``);
each of the eight Naud presets maps to its own name.
"""
import math
import uuid
from contextlib import contextmanager

import numpy as np

from .params import NAUD_PATTERNS  # the eight firing patterns of Naud et al. (2008), Fig. 4a-h, in order

#: every label :func:`classify` can return, with its meaning
LABELS = {
    "silent": "no spike at all",
    "transient": "fires at stimulus onset, then stops (last spike in the first half of the run)",
    "sparse": "one or two spikes, not all early: too few intervals to tell a pattern",
    "tonic": "regular firing at a constant rate",
    "adapting": "inter-spike intervals grow: the rate decays (adaptation index > 0.003)",
    "accelerating": "inter-spike intervals shrink: the rate increases (adaptation index < -0.003)",
    "initial_burst": "a burst of spikes at onset, then single spikes",
    "regular_bursting": "repeated, regularly spaced bursts",
    "irregular": "intervals vary erratically from one to the next (CV2 > 0.5)",
    "delayed": "a long delay before the first spike, then tonic, adapting, irregular or initial-burst firing",
    "delayed_accelerating": "a long delay before the first spike, then accelerating firing",
    "delayed_regular_bursting": "a long delay before the first spike, then regular bursting",
}

#: the label each bundled preset gets with its published stimulus (see module docstring)
EXPECTED_LABELS = {**{name: name for name in NAUD_PATTERNS}, "brette_gerstner_2005": "adapting"}

#: thresholds of :func:`classify` (keyword arguments of the same names override them)
CLASSIFY_DEFAULTS = dict(transient_fraction=0.5, delay_ratio=2.0, gap_ratio=3.0, burst_period_cv=0.3,
                         irregular_cv2=0.5, tonic_band=0.003)


# ----------------------------------------------------------------------------
# basic spike-train measures
# ----------------------------------------------------------------------------
def spike_train(spike_times):
    """The spike times as a sorted 1-D float64 array (ValueError if they are not
    finite numbers)."""
    times = np.asarray(spike_times, dtype=np.float64)
    if times.ndim == 0:
        times = times.reshape(1)
    if times.ndim != 1:
        raise ValueError(f"spike times must be a 1-D sequence, got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError("spike times must be finite numbers (no NaN or inf)")
    return np.sort(times)


def isi(spike_times):
    """Inter-spike intervals (ms): the differences of the sorted spike times,
    an array one shorter than the train (empty for fewer than two spikes)."""
    return np.diff(spike_train(spike_times))


def first_spike_latency(spike_times, onset=0.):
    """Time from ``onset`` (ms) to the first spike at or after it; NaN if none."""
    times = spike_train(spike_times)
    times = times[times >= onset]
    return float(times[0] - onset) if times.size else float("nan")


def firing_rate(spike_times, duration, start=0.):
    """Mean firing rate (Hz) over the window ``[start, start + duration]`` (ms)."""
    if not (np.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a finite number > 0 ms, got {duration!r}")
    times = spike_train(spike_times)
    count = np.count_nonzero((times >= start) & (times <= start + duration))
    return 1000. * count / duration


def isi_cv(spike_times):
    """Coefficient of variation (std / mean) of the ISIs; NaN for fewer than two ISIs."""
    intervals = isi(spike_times)
    if intervals.size < 2 or intervals.mean() <= 0:
        return float("nan")
    return float(intervals.std() / intervals.mean())


def cv2(spike_times):
    """Local variation CV2 (Holt et al. 1996): the mean over consecutive ISI
    pairs of ``2 |ISI_{k+1} - ISI_k| / (ISI_{k+1} + ISI_k)``. 0 for a regular
    train, about 1 for a Poisson train, small for slow monotonic adaptation;
    NaN for fewer than two ISIs."""
    intervals = isi(spike_times)
    if intervals.size < 2:
        return float("nan")
    total = intervals[1:] + intervals[:-1]
    terms = np.divide(2. * np.abs(np.diff(intervals)), total, out=np.zeros_like(total), where=total > 0)
    return float(terms.mean())



def coincidence_factor(data, model, duration, window=4.):
    r"""The coincidence factor Gamma (Kistler, Gerstner & van Hemmen 1997) of a ``model`` spike
    train against a ``data`` train over ``duration`` (ms), with coincidences within +-``window``
    (ms; Default: 4, as in the INCF 2009 single-neuron prediction challenge):

    .. math::
        \Gamma = \frac{N_\mathrm{coinc} - 2\nu\Delta N_\mathrm{data}}
        {\tfrac12 (N_\mathrm{data} + N_\mathrm{model})(1 - 2\nu\Delta)}

    with nu the model's rate: 1 for the same train, about 0 for a Poisson train of the model's rate.
    Each spike takes part in at most one coincidence (matched in time order). NaN where both
    trains are empty or 2 nu Delta >= 1.
    """
    data, model = spike_train(data), spike_train(model)
    i = j = coinc = 0
    while i < data.size and j < model.size:
        if abs(data[i] - model[j]) <= window:
            coinc, i, j = coinc + 1, i + 1, j + 1
        elif data[i] < model[j]:
            i += 1
        else:
            j += 1
    chance = 2. * window * model.size / duration
    if data.size + model.size == 0 or chance >= 1.:
        return float("nan")
    return float((coinc - chance * data.size) / (0.5 * (data.size + model.size) * (1. - chance)))

def default_skip(n_isi):
    """ISIs :func:`adaptation_index` discards as the initial transient by
    default: 20 % of them rounded up, but never so many that fewer than two
    remain (none when there are only two)."""
    return max(0, min(int(math.ceil(0.2 * n_isi)), n_isi - 2))


def adaptation_index(spike_times, skip=None):
    """Adaptation index of Naud et al. (2008):

    ``A = mean over k of (ISI_{k+1} - ISI_k) / (ISI_{k+1} + ISI_k)``

    over the consecutive ISI pairs after the first ``skip`` ISIs. Naud et al.
    leave out the first ISIs so that an initial transient (such as an initial
    burst) does not dominate the steady-state value; here, by default, the
    first 20 % of the ISIs are left out (rounded up; see :func:`default_skip`).
    A = 0 for a regular train, > 0 when intervals grow (adaptation), < 0 when
    they shrink (acceleration); a geometric sequence ``ISI_k = ISI_0 r^k``
    gives exactly ``(r - 1)/(r + 1)``.

    Args:
        spike_times: spike times (ms)

        skip: number of leading ISIs to ignore (Default: ``default_skip``)

    Returns:
        A in (-1, 1), or NaN when fewer than two ISIs remain
    """
    intervals = isi(spike_times)
    if skip is None:
        skip = default_skip(intervals.size)
    if isinstance(skip, bool) or int(skip) != skip or skip < 0:
        raise ValueError(f"skip must be a non-negative integer, got {skip!r}")
    intervals = intervals[int(skip):]
    if intervals.size < 2:
        return float("nan")
    total = intervals[1:] + intervals[:-1]
    terms = np.divide(np.diff(intervals), total, out=np.zeros_like(total), where=total > 0)
    return float(terms.mean())


# ----------------------------------------------------------------------------
# bursts
# ----------------------------------------------------------------------------
def burst_threshold(spike_times, gap_ratio=3.0):
    """The ISI that separates intra-burst from inter-burst intervals, or None
    when the train has no bursts.

    The sorted ISIs are scanned for their largest jump ``ISI_(i+1) / ISI_(i)``;
    if that ratio is at least ``gap_ratio``, the ISIs fall into two well
    separated groups and the threshold is the geometric mean of the two ISIs
    on either side of the jump. A regular, adapting or irregular train has
    ISIs that fill their range without such a gap. (A threshold relative to
    the median ISI fails for bursters, whose median ISI is intra-burst.)
    """
    intervals = np.sort(isi(spike_times))
    if intervals.size < 2:
        return None
    floor = np.maximum(intervals, 1e-9)
    ratios = floor[1:] / floor[:-1]
    i = int(np.argmax(ratios))
    if ratios[i] < gap_ratio:
        return None
    return float(np.sqrt(floor[i] * floor[i + 1]))


def detect_bursts(spike_times, gap_ratio=3.0, threshold=None):
    """Groups of two or more spikes separated by short ISIs.

    Args:
        spike_times: spike times (ms)

        gap_ratio: see :func:`burst_threshold`

        threshold: an explicit intra-burst ISI limit (ms) instead of the
            automatic :func:`burst_threshold`

    Returns:
        list of (first, last) spike indices into the sorted train, one pair
        per burst (``last`` inclusive); empty when there is no burst
    """
    times = spike_train(spike_times)
    if threshold is None:
        threshold = burst_threshold(times, gap_ratio)
    if threshold is None or times.size < 2:
        return []
    short = np.diff(times) < threshold
    bursts, start = [], None
    for k, is_short in enumerate(short):
        if is_short and start is None:
            start = k
        elif not is_short and start is not None:
            bursts.append((start, k))
            start = None
    if start is not None:
        bursts.append((start, times.size - 1))
    return bursts


def burst_fraction(spike_times, gap_ratio=3.0, threshold=None):
    """Fraction of the spikes that belong to a burst (see :func:`detect_bursts`);
    0 for an empty train."""
    times = spike_train(spike_times)
    if times.size == 0:
        return 0.
    bursts = detect_bursts(times, gap_ratio, threshold)
    return sum(last - first + 1 for first, last in bursts) / times.size


# ----------------------------------------------------------------------------
# classification
# ----------------------------------------------------------------------------
def _clean(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def features(spike_times, duration, **thresholds):
    """The measures :func:`classify` uses, as a JSON-friendly dict (NaN becomes None).

    Keys: n_spikes, rate_hz, latency_ms, last_spike_ms, mean_isi_ms, isi_cv, cv2,
    adaptation_index, n_bursts, burst_fraction, burst_period_cv, delayed, label.
    """
    opts = {**CLASSIFY_DEFAULTS, **thresholds}
    unknown = set(thresholds) - set(CLASSIFY_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown classify threshold(s): {', '.join(sorted(unknown))}")
    if not (np.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a finite number > 0 ms, got {duration!r}")
    times = spike_train(spike_times)
    intervals = np.diff(times)
    bursts = detect_bursts(times, opts["gap_ratio"])
    onsets = np.array([times[first] for first, _ in bursts])
    periods = np.diff(onsets)
    period_cv = float(periods.std() / periods.mean()) if periods.size >= 2 and periods.mean() > 0 else \
        (0. if periods.size == 1 else float("nan"))
    mean_isi = float(intervals.mean()) if intervals.size else float("nan")
    latency = first_spike_latency(times)
    f = dict(
        n_spikes=int(times.size),
        rate_hz=1000. * times.size / duration,
        latency_ms=latency,
        last_spike_ms=float(times[-1]) if times.size else float("nan"),
        mean_isi_ms=mean_isi,
        isi_cv=isi_cv(times),
        cv2=cv2(times),
        adaptation_index=adaptation_index(times),
        n_bursts=len(bursts),
        burst_fraction=burst_fraction(times, opts["gap_ratio"]),
        burst_period_cv=period_cv,
        delayed=bool(intervals.size >= 1 and latency > opts["delay_ratio"] * mean_isi),
    )
    f["label"] = _decide(f, bursts, duration, opts)
    return {k: _clean(v) for k, v in f.items()}


def _decide(f, bursts, duration, opts):
    n = f["n_spikes"]
    if n == 0:
        return "silent"
    if f["last_spike_ms"] < opts["transient_fraction"] * duration:
        return "transient"
    if n < 3:
        return "sparse"
    regular_bursts = (f["n_bursts"] >= 2 and f["burst_fraction"] >= 0.5
                      and not f["burst_period_cv"] > opts["burst_period_cv"])
    if regular_bursts:
        pattern = "regular_bursting"
    elif f["n_bursts"] == 1 and bursts[0][0] == 0:
        pattern = "initial_burst"
    elif f["cv2"] > opts["irregular_cv2"]:
        pattern = "irregular"
    elif f["adaptation_index"] > opts["tonic_band"]:
        pattern = "adapting"
    elif f["adaptation_index"] < -opts["tonic_band"]:
        pattern = "accelerating"
    else:
        pattern = "tonic"
    if f["delayed"]:
        return "delayed_" + pattern if pattern in ("accelerating", "regular_bursting") else "delayed"
    return pattern


def classify(spike_times, duration, **thresholds):
    """The firing-pattern label of a spike train under a step current.

    Args:
        spike_times: spike times (ms) measured from the stimulus onset

        duration: length of the stimulus / recording (ms)

        **thresholds: overrides of :data:`CLASSIFY_DEFAULTS`

    Returns:
        one of the keys of :data:`LABELS`; the decision rules are listed in
        the module docstring
    """
    return features(spike_times, duration, **thresholds)["label"]


# ----------------------------------------------------------------------------
# simulations
# ----------------------------------------------------------------------------
@contextmanager
def _scratch_context(prefix):
    """A uniquely named Context, removed again afterwards."""
    from ngclearn import Context
    from ngcsimlib.context import contextManager
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with Context(name) as ctx:
            yield ctx
    finally:
        contextManager.remove_context(name)


def _cell_kwargs(preset_or_kwargs):
    """AdExCell keyword arguments and the preset's stimulus (None for kwargs)."""
    from .params import preset, preset_kwargs
    if isinstance(preset_or_kwargs, str):
        return preset_kwargs(preset_or_kwargs), preset(preset_or_kwargs)["I"]
    if isinstance(preset_or_kwargs, dict):
        return dict(preset_or_kwargs), None
    raise TypeError(f"expected a preset name or a dict of AdExCell keyword arguments, "
                    f"got {type(preset_or_kwargs).__name__}")


def simulate_patterns(names=NAUD_PATTERNS, duration=500., dt=0.1, method="precise", currents=None):
    """Simulates presets with their published stimulus (constant current from
    t = 0, V(0) = E_L) in ONE AdExCell population with per-neuron parameters.

    Args:
        names: preset names (Default: the eight Naud patterns)

        duration: ms (Default: 500)

        dt: ms (Default: 0.1)

        method: integration_type (Default: "precise")

        currents: optional dict name -> current (pA) overriding the published one

    Returns:
        dict name -> :class:`~ngc_adex.simulate.SimulationResult` of that one
        neuron, with traces "v" and "w" of shape (n_steps, 1)
    """
    from .cell import AdExCell
    from .params import preset, preset_kwargs
    from .simulate import simulate
    names = list(names)
    if not names:
        raise ValueError("names must list at least one preset")
    currents = dict(currents or {})
    kws = [preset_kwargs(name) for name in names]
    merged = {key: [kw[key] for kw in kws] for key in kws[0]}
    amps = np.array([currents.get(name, preset(name)["I"]) for name in names], dtype=np.float64)
    with _scratch_context("ngc_adex_patterns"):
        cell = AdExCell("patterns", len(names), integration_type=method, **merged)
    res = simulate(cell, duration, dt, current=amps[None, :], record=("v", "w"))
    return split_result(res, names)


def split_result(result, names):
    """Splits a population :class:`~ngc_adex.simulate.SimulationResult` (all
    neurons recorded) into one single-neuron result per name.

    Args:
        result: the population result; neuron k is ``names[k]``

        names: one name per neuron

    Returns:
        dict name -> SimulationResult with ``n_neurons = 1`` and traces of
        shape (n_steps, 1)
    """
    from .simulate import SimulationResult
    names = list(names)
    if len(names) != result.n_neurons:
        raise ValueError(f"got {len(names)} names for {result.n_neurons} neurons")
    trains = result.trains()
    out = {}
    for i, name in enumerate(names):
        traces = {}
        for key, values in result.traces.items():
            if values.shape[1] != result.n_neurons:
                raise ValueError(f"trace '{key}' does not hold every neuron (record all neurons to split)")
            traces[key] = values[:, i:i + 1]
        out[name] = SimulationResult(t=result.t, spike_times=trains[i],
                                     spike_index=np.zeros(len(trains[i]), dtype=np.int64),
                                     traces=traces, n_neurons=1)
    return out


def simulate_one(preset_or_kwargs, current=None, duration=500., dt=0.1, method="precise"):
    """One neuron from a preset name or AdExCell keyword arguments under a
    constant current (pA; Default: the preset's published stimulus), with v
    and w recorded. Returns a :class:`~ngc_adex.simulate.SimulationResult`."""
    from .cell import AdExCell
    from .simulate import simulate
    kwargs, stim = _cell_kwargs(preset_or_kwargs)
    if current is None:
        if stim is None:
            raise ValueError("current is required when cell keyword arguments are given")
        current = stim
    kwargs["integration_type"] = method
    with _scratch_context("ngc_adex_one"):
        cell = AdExCell("neuron", 1, **kwargs)
    return simulate(cell, duration, dt, current=float(current), record=("v", "w"))


def fi_curve(preset_or_kwargs, currents, duration=500., dt=0.1, method="precise", window=None,
             return_trains=False):
    """Firing rate versus injected current (f-I curve), computed with ONE
    AdExCell population: neuron k receives ``currents[k]`` through j.

    Args:
        preset_or_kwargs: a preset name (see :data:`~ngc_adex.PRESETS`) or a
            dict of AdExCell keyword arguments (e.g. from ``from_physical``);
            with physical parameters the currents are in pA

        currents: 1-D sequence of constant currents, one per neuron

        duration: ms (Default: 500)

        dt: ms (Default: 0.1)

        method: integration_type (Default: "precise"; overrides one in the kwargs)

        window: (start, stop) in ms over which the rate is counted (Default:
            the whole run); e.g. ``(duration / 2, duration)`` for a
            steady-state rate

        return_trains: also return the spike trains

    Returns:
        rates in Hz, shape (len(currents),); with ``return_trains`` the pair
        (rates, list of spike-time arrays)
    """
    from .cell import AdExCell
    from .simulate import simulate
    kwargs, _ = _cell_kwargs(preset_or_kwargs)
    amps = np.asarray(currents, dtype=np.float64)
    if amps.ndim != 1 or amps.size == 0:
        raise ValueError(f"currents must be a non-empty 1-D sequence, got shape {amps.shape}")
    if not np.all(np.isfinite(amps)):
        raise ValueError("currents must be finite")
    start, stop = (0., float(duration)) if window is None else (float(window[0]), float(window[1]))
    if not stop > start:
        raise ValueError(f"window must satisfy start < stop, got {window!r}")
    kwargs["integration_type"] = method
    with _scratch_context("ngc_adex_fi"):
        cell = AdExCell("fi", amps.size, **kwargs)
    trains = simulate(cell, duration, dt, current=amps[None, :]).trains()
    rates = np.array([firing_rate(tr, stop - start, start) for tr in trains])
    return (rates, trains) if return_trains else rates
