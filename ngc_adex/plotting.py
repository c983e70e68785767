"""Figures: the firing-pattern gallery, f-I curves, phase planes and rasters.

Every function builds a new matplotlib ``Figure`` (through
``matplotlib.figure.Figure``, so no GUI backend or ``pyplot`` state is
involved and it works headless), saves it when ``path`` is given (creating the
parent directory) and returns it.
"""
import os

import numpy as np
from matplotlib.figure import Figure

from .numerics import EXP_CAP


def _finish(fig, path, dpi=110):
    if path is not None:
        parent = os.path.dirname(os.fspath(path))
        if parent:
            os.makedirs(parent, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


def _trace(result, name):
    """Recorded trace ``name`` of the first recorded neuron as a 1-D array."""
    values = np.asarray(result.traces[name])
    return values.reshape(values.shape[0], -1)[:, 0]


def _with_spikes(t, v, spike_times, v_peak):
    """The v trace with a point at (spike time, v_peak) inserted for every spike,
    so the reset (which happens inside a step) is drawn as a spike."""
    spike_times = np.asarray(spike_times, dtype=np.float64)
    if spike_times.size == 0:
        return t, v
    tt = np.concatenate([t, spike_times])
    vv = np.concatenate([v, np.full(spike_times.shape, v_peak)])
    order = np.argsort(tt, kind="stable")
    return tt[order], vv[order]


def plot_gallery(results_by_pattern, labels=None, v_peak=0., path=None, title=None):
    """v and w traces of several firing patterns in one figure.

    Args:
        results_by_pattern: dict name -> :class:`~ngc_adex.simulate.SimulationResult`
            of one neuron with traces "v" and "w" (as returned by
            :func:`ngc_adex.analysis.simulate_patterns`)

        labels: optional dict name -> classification label shown in the titles

        v_peak: height of the drawn spikes (mV; Default: 0, the presets' V_peak)

        path: where to save the figure (PNG, PDF, ...), or None

        title: figure title

    Returns:
        the Figure (two columns; for each pattern a v panel above a w panel)
    """
    names = list(results_by_pattern)
    n_rows = (len(names) + 1) // 2
    fig = Figure(figsize=(12, 2.6 * n_rows), layout="constrained")
    outer = fig.add_gridspec(n_rows, 2)
    for k, name in enumerate(names):
        res = results_by_pattern[name]
        inner = outer[k // 2, k % 2].subgridspec(2, 1, height_ratios=(2, 1), hspace=0.05)
        ax_v = fig.add_subplot(inner[0])
        ax_w = fig.add_subplot(inner[1], sharex=ax_v)
        t, v = _with_spikes(res.t, _trace(res, "v"), res.spike_times, v_peak)
        ax_v.plot(t, v, color="tab:blue", lw=0.8)
        ax_w.plot(res.t, _trace(res, "w"), color="tab:red", lw=0.8)
        head = name.replace("_", " ")
        if labels and name in labels:
            head += f"  [{labels[name]}]"
        ax_v.set_title(f"{head}  ({len(res.spike_times)} spikes)", fontsize=9)
        ax_v.set_ylabel("v (mV)", fontsize=8)
        ax_w.set_ylabel("w (pA)", fontsize=8)
        ax_v.tick_params(labelbottom=False, labelsize=7)
        ax_w.tick_params(labelsize=7)
        if k >= len(names) - 2:
            ax_w.set_xlabel("time (ms)", fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def plot_fi(currents, rates, path=None, title="f-I curve", xlabel="input current (pA)", ax=None):
    """Firing rate against input current.

    Args:
        currents: 1-D array of currents shared by all curves

        rates: an array of rates (Hz) of the same length, or a dict
            label -> array for several curves

        path: where to save the figure, or None

        title, xlabel: axis texts

        ax: draw into this Axes instead of a new figure

    Returns:
        the Figure
    """
    if ax is None:
        fig = Figure(figsize=(6, 4.2), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    curves = rates if isinstance(rates, dict) else {None: rates}
    currents = np.asarray(currents, dtype=np.float64)
    for label, r in curves.items():
        ax.plot(currents, np.asarray(r, dtype=np.float64), marker="o", ms=3, lw=1.2,
                label=None if label is None else str(label).replace("_", " "))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("firing rate (Hz)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if any(label is not None for label in curves):
        ax.legend(fontsize=8)
    return _finish(fig, path)


def v_nullcline(v, kwargs, current):
    """w on the v-nullcline: ``w = (-(v - v_rest) + D exp((v - vT)/D) + R j) / R``
    (``D = v_sharpness``, ``vT = intrinsic_mem_thr``, ``R = resist_m``;
    the exponential term is dropped when D = 0)."""
    v = np.asarray(v, dtype=np.float64)
    d, vt, r = float(kwargs["v_sharpness"]), float(kwargs["intrinsic_mem_thr"]), float(kwargs["resist_m"])
    exp_term = d * np.exp(np.minimum((v - vt) / d, EXP_CAP)) if d > 0 else 0.
    return (-(v - float(kwargs["v_rest"])) + exp_term + r * current) / r


def w_nullcline(v, kwargs):
    """w on the w-nullcline: ``w = a (v - v_rest)``."""
    return float(kwargs["a"]) * (np.asarray(v, dtype=np.float64) - float(kwargs["v_rest"]))


def plot_phase_plane(kwargs, current, trajectory, path=None, title=None, v_range=None, w_range=None):
    """The (v, w) phase plane: both nullclines and a simulated trajectory with
    its resets.

    Args:
        kwargs: AdExCell keyword arguments (scalar tau_m, resist_m, v_sharpness,
            intrinsic_mem_thr, v_rest, v_reset, a, b, thr), e.g. from
            ``preset_kwargs``

        current: the constant input current j of the trajectory

        trajectory: a :class:`~ngc_adex.simulate.SimulationResult` with traces
            "v" and "w" (first neuron used), or a dict with arrays "t", "v",
            "w" and optionally "spike_times"

        path: where to save the figure, or None

        title: axes title

        v_range, w_range: axis limits (Default: from v_reset, the threshold
            region and the trajectory)

    Returns:
        the Figure. Continuous pieces of the trajectory are solid lines; each
        reset (v -> v_reset, w -> w + b) is a dotted jump ending in a marker.
    """
    if isinstance(trajectory, dict):
        t = np.asarray(trajectory["t"], dtype=np.float64)
        v = np.asarray(trajectory["v"], dtype=np.float64).reshape(len(t), -1)[:, 0]
        w = np.asarray(trajectory["w"], dtype=np.float64).reshape(len(t), -1)[:, 0]
        spikes = np.asarray(trajectory.get("spike_times", ()), dtype=np.float64)
    else:
        t, v, w = np.asarray(trajectory.t), _trace(trajectory, "v"), _trace(trajectory, "w")
        spikes = np.asarray(trajectory.spike_times, dtype=np.float64)
    d, vt = float(kwargs["v_sharpness"]), float(kwargs["intrinsic_mem_thr"])
    v_reset, v_rest = float(kwargs["v_reset"]), float(kwargs["v_rest"])
    if v_range is None:
        lo = min(v_reset, v_rest, float(np.min(v))) - 5.
        v_range = (lo, vt + max(4. * d, 5.))
    vs = np.linspace(v_range[0], v_range[1], 600)
    wn_v, wn_w = v_nullcline(vs, kwargs, current), w_nullcline(vs, kwargs)
    if w_range is None:
        lo, hi = float(np.min(w)), float(np.max(w))
        pad = 0.15 * max(hi - lo, 20.)
        w_range = (min(lo, float(np.min(wn_w))) - pad, hi + pad)
        w_range = (max(w_range[0], lo - 3 * pad), w_range[1])

    fig = Figure(figsize=(6.5, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(vs, wn_v, color="tab:blue", lw=1.5, label="v-nullcline (dv/dt = 0)")
    ax.plot(vs, wn_w, color="tab:red", lw=1.5, label="w-nullcline (dw/dt = 0)")
    ax.axvline(v_reset, color="gray", ls="--", lw=0.8, label="v_reset")

    # the step containing a spike ends after the reset: split the trajectory there
    cuts = np.unique(np.clip(np.searchsorted(t, spikes), 0, len(t)))
    cuts = cuts[(cuts > 0) & (cuts < len(t))]
    pieces = np.split(np.arange(len(t)), cuts)
    for k, idx in enumerate(pieces):
        ax.plot(v[idx], w[idx], color="black", lw=0.9, label="trajectory" if k == 0 else None)
    for k, c in enumerate(cuts):
        ax.plot([v[c - 1], v_range[1], v[c]], [w[c - 1], w[c - 1], w[c]], color="black", ls=":", lw=0.8)
        ax.plot(v[c], w[c], marker="o", ms=4, color="tab:green", label="after reset" if k == 0 else None)
    ax.plot(v[0], w[0], marker="s", ms=5, color="tab:purple", label="start")
    ax.set_xlim(*v_range)
    ax.set_ylim(*w_range)
    ax.set_xlabel("v (mV)")
    ax.set_ylabel("w (pA)")
    ax.set_title(title or f"phase plane, j = {current:g}")
    ax.legend(fontsize=7, loc="upper left")
    return _finish(fig, path)


def plot_raster(trains, path=None, duration=None, rate_bin=None, title="spike raster", colors=None):
    """Spike raster, optionally with the population rate below it.

    Args:
        trains: a list of spike-time arrays (one per neuron), a
            :class:`~ngc_adex.simulate.SimulationResult`, or a dict
            group -> list of arrays (groups stacked and coloured, e.g. E and I)

        path: where to save the figure, or None

        duration: x-axis end (ms; Default: the last spike)

        rate_bin: bin width (ms) of a population-rate panel (Default: none)

        title: axes title

        colors: optional dict group -> colour

    Returns:
        the Figure
    """
    if hasattr(trains, "trains"):
        trains = trains.trains()
    groups = trains if isinstance(trains, dict) else {None: list(trains)}
    palette = ["tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple"]
    colors = dict(colors or {})
    last = max((float(np.max(tr)) for g in groups.values() for tr in g if len(tr)), default=1.)
    end = float(duration) if duration is not None else last

    fig = Figure(figsize=(8, 5 if rate_bin else 4), layout="constrained")
    if rate_bin:
        ax, ax_rate = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    else:
        ax, ax_rate = fig.add_subplot(), None
    row = 0
    for k, (group, g_trains) in enumerate(groups.items()):
        color = colors.get(group, palette[k % len(palette)])
        xs = [np.asarray(tr, dtype=np.float64) for tr in g_trains]
        ys = [np.full(len(x), row + i) for i, x in enumerate(xs)]
        if xs:
            ax.scatter(np.concatenate(xs), np.concatenate(ys), s=2, marker="|", color=color,
                       label=None if group is None else f"{group} ({len(xs)})")
        if ax_rate is not None and xs:
            edges = np.arange(0., end + rate_bin, rate_bin)
            counts, _ = np.histogram(np.concatenate(xs), bins=edges)
            rate = counts / max(len(xs), 1) / (rate_bin / 1000.)
            ax_rate.step(edges[:-1], rate, where="post", color=color, lw=1,
                         label=None if group is None else str(group))
        row += len(xs)
    ax.set_ylim(-1, max(row, 1))
    ax.set_xlim(0., end)
    ax.set_ylabel("neuron")
    ax.set_title(title)
    if any(g is not None for g in groups):
        ax.legend(fontsize=8, loc="upper right", markerscale=4)
    if ax_rate is not None:
        ax_rate.set_ylabel("rate (Hz)")
        ax_rate.set_xlabel("time (ms)")
    else:
        ax.set_xlabel("time (ms)")
    return _finish(fig, path)
