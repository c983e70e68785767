"""The ``ngc-adex`` command line.

``ngc-adex [gallery]``
    simulates the eight Naud et al. (2008) firing patterns and writes
    ``gallery.png``, ``patterns.json`` and ``patterns.csv`` (the default command)
``ngc-adex run``
    one neuron from a preset and/or physical parameters; traces and spikes to npz or csv
``ngc-adex fi``
    f-I curves of one or more presets (``fi.csv``, ``fi.png``)

Bad arguments print one line ``ngc-adex: error: ...`` on stderr and exit with
status 2; a file that cannot be written exits with status 1.
"""
import argparse
import csv
import json
import math
import os
import sys

import numpy as np

from ._json import jsonable

PROG = "ngc-adex"
COMMANDS = ("gallery", "run", "fi")
#: CLI option -> preset() key for the physical parameters of ``run``
PHYSICAL = (("C", "C", "membrane capacitance (pF)"), ("gL", "gL", "leak conductance (nS)"),
            ("EL", "EL", "leak reversal / resting potential (mV)"),
            ("VT", "VT", "threshold of the exponential term (mV)"), ("DT", "DT", "slope factor Delta_T (mV)"),
            ("Vr", "Vr", "reset potential (mV)"), ("Vpeak", "V_peak", "spike detection potential (mV)"),
            ("a", "a", "subthreshold adaptation (nS)"), ("tau-w", "tau_w", "adaptation time constant (ms)"),
            ("b", "b", "spike-triggered adaptation increment (pA)"))


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one line (raised, not printed)."""

    def error(self, message):
        raise _UsageError(message)


def _number(convert, kind, ok, requirement):
    """An argparse ``type``: ``convert`` the text (a ``kind``) and require ``ok`` of the value."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
        return value
    return parse


_positive = _number(float, "a number", lambda x: math.isfinite(x) and x > 0, "a finite number > 0")
_finite = _number(float, "a number", math.isfinite, "a finite number")
_count = _number(int, "an integer", lambda n: n >= 1, ">= 1")


def _common(p, duration=500.):
    from .numerics import METHOD_ALIASES
    p.add_argument("--out", default="out", metavar="DIR", help="output directory (Default: out/)")
    p.add_argument("--duration", type=_positive, default=duration, metavar="MS",
                   help=f"simulated time in ms (Default: {duration:g})")
    p.add_argument("--dt", type=_positive, default=0.1, metavar="MS", help="time step in ms (Default: 0.1)")
    p.add_argument("--method", default="precise", choices=sorted(METHOD_ALIASES),
                   help="integrator (Default: precise)")


def build_parser():
    """The argparse parser of ``ngc-adex`` (subcommands gallery, run, fi)."""
    from . import __version__
    from .params import PRESETS
    parser = _Parser(prog=PROG, description="AdEx neurons for ngc-learn: firing-pattern gallery, single "
                                            "runs and f-I curves. Without a command, runs 'gallery'.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{gallery,run,fi}", parser_class=_Parser)

    g = sub.add_parser("gallery", help="simulate and classify the eight Naud et al. (2008) patterns (default)",
                       description="Simulates the eight Naud et al. (2008) firing patterns with their published "
                                   "stimulus (constant current from t=0, V(0)=E_L) in one population and writes "
                                   "gallery.png, patterns.json and patterns.csv into --out.")
    _common(g)
    g.set_defaults(func=_cmd_gallery)

    r = sub.add_parser("run", help="simulate one neuron (preset and/or physical parameters)",
                       description="Simulates one AdEx neuron under a constant current. Parameters come from "
                                   "--preset (Default: brette_gerstner_2005); each physical option overrides "
                                   "one of them.")
    r.add_argument("--preset", choices=PRESETS, default=None, metavar="NAME",
                   help=f"parameter set, one of: {', '.join(PRESETS)}")
    for opt, _, text in PHYSICAL:
        r.add_argument(f"--{opt}", type=_finite, default=None, dest=opt.replace("-", "_"), help=text)
    r.add_argument("--t-ref", type=_finite, default=0., dest="t_ref", help="refractory period (ms; Default: 0)")
    r.add_argument("--current", type=_finite, default=None, metavar="PA",
                   help="constant input current in pA (Default: the preset's published stimulus)")
    _common(r)
    r.add_argument("--format", choices=("npz", "csv"), default="npz",
                   help="npz: run.npz; csv: run_trace.csv + run_spikes.csv (Default: npz)")
    r.add_argument("--plot", action="store_true", help="also write run.png (traces) and run_phase.png")
    r.set_defaults(func=_cmd_run)

    f = sub.add_parser("fi", help="f-I curves of presets",
                       description="Firing rate (Hz, spikes / duration) versus constant input current for one "
                                   "or more presets; each curve is one population simulation. Writes fi.csv "
                                   "and fi.png.")
    f.add_argument("--preset", nargs="+", choices=PRESETS, default=["tonic", "adapting"], metavar="NAME",
                   help="one or more presets (Default: tonic adapting)")
    f.add_argument("--currents", nargs="+", type=_finite, default=None, metavar="PA",
                   help="explicit currents in pA (overrides --i-min/--i-max/--n-points)")
    f.add_argument("--i-min", type=_finite, default=0., metavar="PA", help="smallest current (Default: 0 pA)")
    f.add_argument("--i-max", type=_finite, default=None, metavar="PA",
                   help="largest current (Default: 1.5 x the largest published stimulus of the presets)")
    f.add_argument("--n-points", type=_count, default=31, metavar="N", help="number of currents (Default: 31)")
    _common(f)
    f.set_defaults(func=_cmd_fi)
    return parser


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def _fmt(x, spec=".4f"):
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _outdir(path):
    os.makedirs(path, exist_ok=True)
    return path


# ----------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------
def _cmd_gallery(args):
    from . import analysis
    from .plotting import plot_gallery
    from .params import preset
    results = analysis.simulate_patterns(analysis.NAUD_PATTERNS, duration=args.duration, dt=args.dt,
                                         method=args.method)
    out = _outdir(args.out)
    rows, patterns = [], {}
    for name, res in results.items():
        feats = analysis.features(res.spike_times, args.duration)
        expected = analysis.EXPECTED_LABELS[name]
        patterns[name] = dict(current_pA=preset(name)["I"], spike_times_ms=res.spike_times.astype(float),
                              n_spikes=feats["n_spikes"], adaptation_index=feats["adaptation_index"],
                              label=feats["label"], expected=expected, match=feats["label"] == expected,
                              features=feats)
        rows.append(dict(pattern=name, current_pA=preset(name)["I"], n_spikes=feats["n_spikes"],
                         rate_hz=feats["rate_hz"], latency_ms=feats["latency_ms"],
                         adaptation_index=feats["adaptation_index"], isi_cv=feats["isi_cv"], cv2=feats["cv2"],
                         n_bursts=feats["n_bursts"], label=feats["label"], expected=expected,
                         match=feats["label"] == expected))
    labels = {name: p["label"] for name, p in patterns.items()}
    png = os.path.join(out, "gallery.png")
    plot_gallery(results, labels=labels, path=png,
                 title=f"Naud et al. (2008) firing patterns ({args.method}, dt = {args.dt:g} ms)")
    doc = dict(protocol=dict(duration_ms=args.duration, dt_ms=args.dt, method=args.method,
                             stimulus="constant current from t = 0, V(0) = E_L, w(0) = 0"),
               labels=analysis.LABELS, patterns=patterns)
    js = os.path.join(out, "patterns.json")
    with open(js, "w") as fp:
        json.dump(jsonable(doc), fp, indent=1)
    cs = os.path.join(out, "patterns.csv")
    with open(cs, "w", newline="") as fp:
        writer = csv.DictWriter(fp, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})

    print(f"{'pattern':<26} {'I (pA)':>7} {'spikes':>6} {'A':>8}  {'label':<26} {'expected':<26} match")
    for row in rows:
        print(f"{row['pattern']:<26} {row['current_pA']:>7g} {row['n_spikes']:>6d} "
              f"{_fmt(row['adaptation_index']):>8}  {row['label']:<26} {row['expected']:<26} "
              f"{'yes' if row['match'] else 'NO'}")
    n_ok = sum(row["match"] for row in rows)
    print(f"{n_ok}/{len(rows)} patterns classified as expected; wrote {png}, {js}, {cs}")
    return 0


def _run_params(args):
    from .params import from_physical, preset
    base = preset(args.preset or "brette_gerstner_2005")
    for opt, key, _ in PHYSICAL:
        value = getattr(args, opt.replace("-", "_"))
        if value is not None:
            base[key] = value
    kwargs = from_physical(C=base["C"], g_L=base["gL"], E_L=base["EL"], V_T=base["VT"], Delta_T=base["DT"],
                           V_reset=base["Vr"], V_peak=base["V_peak"], a=base["a"], tau_w=base["tau_w"],
                           b=base["b"], t_ref=args.t_ref)
    current = base["I"] if args.current is None else args.current
    return base, kwargs, current


def _cmd_run(args):
    from . import analysis
    base, kwargs, current = _run_params(args)
    res = analysis.simulate_one(kwargs, current, duration=args.duration, dt=args.dt, method=args.method)
    v, w = res.traces["v"][:, 0], res.traces["w"][:, 0]
    spikes = res.spike_times.astype(np.float64)
    feats = analysis.features(spikes, args.duration)
    out = _outdir(args.out)
    written = []
    params = {k: base[k] for k in base if k != "I"}
    params.update(I=current, t_ref=args.t_ref)
    if args.format == "npz":
        path = os.path.join(out, "run.npz")
        np.savez(path, t=res.t, v=v, w=w, spike_times=spikes, current=current,
                 params=json.dumps(jsonable(params)), label=feats["label"])
        written.append(path)
    else:
        path = os.path.join(out, "run_trace.csv")
        np.savetxt(path, np.column_stack([res.t, v, w]), delimiter=",", header="t_ms,v_mV,w_pA",
                   comments="", fmt="%.6g")
        written.append(path)
        path = os.path.join(out, "run_spikes.csv")
        np.savetxt(path, spikes, header="spike_time_ms", comments="", fmt="%.6f")
        written.append(path)
    if args.plot:
        from .plotting import plot_gallery, plot_phase_plane
        name = args.preset or "custom"
        path = os.path.join(out, "run.png")
        plot_gallery({name: res}, labels={name: feats["label"]}, v_peak=base["V_peak"], path=path)
        written.append(path)
        path = os.path.join(out, "run_phase.png")
        plot_phase_plane(kwargs, current, res, path=path, title=f"{name}, I = {current:g} pA")
        written.append(path)
    what = f"preset {args.preset}" if args.preset else "custom parameters"
    print(f"{what}: I = {current:g} pA, {args.duration:g} ms at dt = {args.dt:g} ms ({args.method}): "
          f"{feats['n_spikes']} spikes, {feats['rate_hz']:.1f} Hz, pattern: {feats['label']}")
    print("wrote " + ", ".join(written))
    return 0


def _cmd_fi(args):
    from . import analysis
    from .params import preset
    from .plotting import plot_fi
    if args.currents is not None:
        currents = np.asarray(args.currents, dtype=np.float64)
    else:
        i_max = args.i_max
        if i_max is None:
            i_max = 1.5 * max(preset(name)["I"] for name in args.preset)
        if not i_max > args.i_min:
            raise _UsageError(f"--i-max ({i_max:g}) must be larger than --i-min ({args.i_min:g})")
        currents = np.linspace(args.i_min, i_max, args.n_points)
    names = list(dict.fromkeys(args.preset))
    rates = {name: analysis.fi_curve(name, currents, duration=args.duration, dt=args.dt, method=args.method)
             for name in names}
    out = _outdir(args.out)
    cs = os.path.join(out, "fi.csv")
    np.savetxt(cs, np.column_stack([currents] + [rates[n] for n in names]), delimiter=",",
               header=",".join(["current_pA"] + [f"{n}_hz" for n in names]), comments="", fmt="%.6g")
    png = os.path.join(out, "fi.png")
    plot_fi(currents, rates, path=png, title=f"f-I curves ({args.duration:g} ms, {args.method})")
    for name in names:
        r = rates[name]
        firing = currents[r > 0]
        onset = f"first spikes at {firing[0]:g} pA" if firing.size else "silent over the range"
        print(f"{name:<26} {onset}; {r.max():.1f} Hz at {currents[np.argmax(r)]:g} pA")
    print(f"{len(currents)} currents from {currents.min():g} to {currents.max():g} pA; wrote {cs}, {png}")
    return 0


def main(argv=None):
    """Entry point of the ``ngc-adex`` console script; returns the exit status."""
    import matplotlib
    matplotlib.use("Agg")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["gallery"] + argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return args.func(args)
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else 0
    except (_UsageError, ValueError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
