"""Accuracy versus cost of every integrator at dt = 0.2 .. 0.01 ms.

Accuracy: median over the seven non-chaotic Naud (2008) patterns of the mean
|spike-time error| against ngc_adex/reference.py (as in accuracy.py; ngc_adex
judged on ``t_spike``, ngc-learn's built-in cell on ``tols``).

Cost (of the same configuration, t_spike tracked): neuron-steps per second of a Brette-Gerstner population of N neurons
(currents U(400, 1600) pA) through ``MethodProcess.scan``, measured at every dt
(all configurations interleaved, best of the repetitions). Since a step costs
the same whatever dt, the useful figure for the trade-off is simulated time per
wall-clock time: neuron-seconds simulated per second = (neuron-steps/s) * dt.

The plot (error vs simulated neuron-s per s, log-log) goes to
benchmarks/out/frontier.png.

Usage::

    python benchmarks/frontier.py            # N = 20000, 5 dt, 3 repetitions
    python benchmarks/frontier.py --quick    # dt 0.1 and 0.02, N = 10000
"""
import argparse
import os
import time

import numpy as np

import _common as C
import accuracy
import throughput

DTS = (0.2, 0.1, 0.05, 0.02, 0.01)
CONFIGS = tuple(f"{C.ADEX}:{m}" for m in accuracy.ADEX_METHODS) + (f"{C.BUILTIN}:euler", f"{C.BUILTIN}:rk2")


def measure_costs(labels, dts, n, steps, repeats):
    """Best neuron-steps/s per (label, dt); the compiled scan is shared by all dt."""
    # ngc_adex cells as in accuracy.py: t_spike tracked (precise_times=True where the switch exists)
    runners = {label: (throughput.ScanRunner(C.ADEX, label.partition(":")[2], n, steps, times=True)
                       if label.startswith(C.ADEX + ":") else throughput.make_runner(label, n, steps))
               for label in labels}
    rows = {(label, dt): runners[label].pop.rows(steps, dt) for label in labels for dt in dts}
    for label in labels:  # compile
        runners[label].rows = rows[(label, dts[0])]
        runners[label].run()
    best = {key: np.inf for key in rows}
    for _ in range(repeats):
        for (label, dt), r in rows.items():
            runners[label].rows = r
            t0 = time.perf_counter()
            runners[label].run()
            best[(label, dt)] = min(best[(label, dt)], time.perf_counter() - t0)
    for runner in runners.values():
        runner.close()
    return {key: n * steps / t for key, t in best.items()}


def plot(points, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for label in CONFIGS:
        pts = sorted((p for p in points if p["label"] == label and np.isfinite(p["err"]) and p["err"] > 0),
                     key=lambda p: p["dt"])
        if not pts:
            continue
        x = [p["sim_rate"] for p in pts]
        y = [p["err"] for p in pts]
        style = "--" if label.startswith(C.BUILTIN) else "-"
        nan = " (NaN neurons)" if any(p["nan"] for p in pts) else ""
        line, = ax.plot(x, y, style, marker="o", label=label + nan)
        for p in pts:
            mark = f"{p['dt']:g}" + ("*" if p["count"] else "")
            ax.annotate(mark, (p["sim_rate"], p["err"]), textcoords="offset points", xytext=(4, 3), fontsize=7,
                        color=line.get_color())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("simulated neuron-seconds per wall-clock second (Brette-Gerstner population)")
    ax.set_ylabel("median |spike-time error| (ms), 7 Naud patterns")
    ax.set_title("AdEx accuracy vs cost (labels: dt in ms; * = spike-count errors)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="dt 0.1 and 0.02 ms, N = 10000, 2 repetitions")
    ap.add_argument("--n", type=int, default=None, help="population size for the cost (default 20000)")
    ap.add_argument("--steps", type=int, default=None, help="steps per timed run (default 1000)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved repetitions (default 3)")
    args = ap.parse_args(argv)
    dts = (0.1, 0.02) if args.quick else DTS
    n = args.n or (10000 if args.quick else 20000)
    steps = args.steps or (500 if args.quick else 1000)
    repeats = args.repeats or (2 if args.quick else 3)
    print(C.machine_line())
    t_start = time.perf_counter()
    problems = C.attach_references(C.naud_problems())
    errors = {}
    for dt in dts:
        for label in CONFIGS:
            impl, _, method = label.partition(":")
            res = accuracy.evaluate(impl, method, dt, problems)
            errors[(label, dt)] = (accuracy.summarize(res, problems)["naud"], res["nan"])
    print(f"# accuracy done in {time.perf_counter() - t_start:.0f} s; cost: N = {n}, {steps} steps, "
          f"best of {repeats}", flush=True)
    rates = measure_costs(CONFIGS, dts, n, steps, repeats)
    base = rates[(f"{C.BUILTIN}:euler", 0.1)] if (f"{C.BUILTIN}:euler", 0.1) in rates else np.nan

    points, rows = [], []
    for label in CONFIGS:
        for dt in dts:
            agg, nan = errors[(label, dt)]
            rate = rates[(label, dt)]
            sim_rate = rate * dt * 1e-3
            points.append(dict(label=label, dt=dt, err=agg["median"], count=agg["count"], sim_rate=sim_rate,
                               nan=nan))
            rows.append([label, f"{dt:g}", C.fmt_err(agg["median"]), C.fmt_err(agg["max"]),
                         f"{agg['count']} ({agg['n_bad']})", str(nan), f"{rate:.3g}", f"{sim_rate:.3g}",
                         f"{rate / base:.3f}"])
    print("\nnaud7 med = median over the 7 non-chaotic Naud patterns of the mean |spike-time error| (ms); "
          "max = worst single spike; dN = sum |count error| (patterns); NaN = Naud neurons ending NaN;\n"
          "n-steps/s measured at each dt; neuron-s/s = simulated neuron-seconds per wall second; "
          "ratio = n-steps/s vs ngclearn:euler at dt 0.1")
    print(C.table(["cell:integrator", "dt", "naud7 med", "max", "dN", "NaN", "n-steps/s", "neuron-s/s",
                   "ratio"], rows))

    # the frontier: for each error bound, the cheapest configuration meeting it without count errors
    print("\nCheapest configuration (highest neuron-s/s, no count error, no NaN) reaching a median error:")
    rows = []
    for bound in (1.0, 0.1, 0.01, 0.001):
        ok = [p for p in points if np.isfinite(p["err"]) and p["err"] <= bound and p["count"] == 0
              and errors[(p["label"], p["dt"])][1] == 0]
        if ok:
            p = max(ok, key=lambda q: q["sim_rate"])
            rows.append([f"<= {bound:g} ms", p["label"], f"{p['dt']:g}", C.fmt_err(p["err"]), f"{p['sim_rate']:.3g}"])
        else:
            rows.append([f"<= {bound:g} ms", "none", "-", "-", "-"])
    print(C.table(["median error", "config", "dt", "error", "neuron-s/s"], rows))
    os.makedirs(C.OUT, exist_ok=True)
    path = os.path.join(C.OUT, "frontier.png")
    plot(points, path)
    print(f"\nplot: {os.path.relpath(path, C.ROOT)}")
    print(f"# total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
