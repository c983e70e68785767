"""Published AdEx networks built from this package's components.

:func:`build_rsfs`: the RS-FS conductance-based cortical network of di Volo et
al. (2019) / Goldman et al. (2021), parameters in ``data/rsfs_network.json``
(:func:`rsfs_parameters`): regular-spiking (excitatory) and fast-spiking
(inhibitory) AdEx cells with exponential conductances, pairwise Bernoulli
connectivity without autapses, and a Poisson drive from an external population.

References:
    di Volo, M., Romagnoni, A., Capone, C., Destexhe, A. (2019). Biologically realistic
    mean-field models of conductance-based networks of spiking neurons with adaptation.
    Neural Computation 31(4):653-680.

    Goldman, J. S., Kusch, L., Yalcinkaya, B. H., et al. (2021). A comprehensive neural
    simulation of slow-wave sleep and highly responsive wakefulness dynamics. bioRxiv
    2021.08.31.458365.
"""
import json
from importlib import resources
from typing import Dict, NamedTuple

import jax
from ngclearn import Context, MethodProcess, Summation

from .cell import AdExCell
from .params import from_physical
from .projection import PoissonDrive, SparseProjection


def rsfs_parameters() -> dict:
    """The RS-FS network's parameters (physical units: pF, nS, mV, ms, pA, Hz): populations,
    synapses, connectivity, external drive, simulation (dt, transient)."""
    return json.loads(resources.files("ngc_adex").joinpath("data/rsfs_network.json").read_text())


class RSFSNetwork(NamedTuple):
    """The components and processes of :func:`build_rsfs` (its Context is closed)."""
    advance: MethodProcess       # advance_state of drives, projections, then cells (takes t, dt)
    reset: MethodProcess
    rs: AdExCell                 # regular-spiking (excitatory) population, receptor ports exc/inh
    fs: AdExCell                 # fast-spiking (inhibitory) population
    projections: Dict[str, SparseProjection]  # "RSRS", "RSFS", "FSRS", "FSFS" (source, target)
    drives: Dict[str, PoissonDrive]           # "RS", "FS": the external Poisson input of each


def build_rsfs(n_scale=1., integrator="heun", seed=0, params=None, name="rsfs") -> RSFSNetwork:
    """Builds the RS-FS network in a new Context.

    Every neuron gets exponential excitatory and inhibitory conductances (receptor ports
    ``exc``/``inh``); recurrent projections have delay 0 (each reads the spikes of the previous
    step: the events of step t act from the start of step t + 1, as a Brian2 synapse without
    delay); each target's external drive is the sum of its K ~ Binomial(N_ext, p) Poisson sources.

    Args:
        n_scale: population sizes times n_scale at fixed in-degree (p / n_scale) (Default: 1)

        integrator: the cells' ``integration_type`` (Default: "heun": second order like the
            published Brian2 scripts, with the conductances integrated inside the step)

        seed: connectivity and drive seed (Default: 0)

        params: parameters in :func:`rsfs_parameters`' format (Default: those)

        name: the Context's name

    Returns:
        :class:`RSFSNetwork`; run with ``reset.run()`` and ``advance.scan(rows)`` (or
        ``advance.run.compiled`` in one's own ``lax.scan``)
    """
    model = rsfs_parameters() if params is None else params
    syn, pops, ext = model["synapses"], model["populations"], model["external_drive"]
    n = {k: int(round(pops[k]["N"] * n_scale)) for k in ("RS", "FS")}
    p = model["connectivity"]["p"] / n_scale
    receptors = [{"name": "exc", "kind": "exp", "tau_decay": syn["tau_syn_e"], "e_rev": syn["E_e"]},
                 {"name": "inh", "kind": "exp", "tau_decay": syn["tau_syn_i"], "e_rev": syn["E_i"]}]
    weight = {"RS": syn["Qe"], "FS": syn["Qi"]}  # nS per spike of the source population
    keys = jax.random.split(jax.random.PRNGKey(seed), 8)

    def cell(pop):
        q = pops[pop]
        kw = from_physical(C=q["C"], g_L=q["gL"], E_L=q["EL"], V_T=q["VT"], Delta_T=q["DT"], V_reset=q["Vr"],
                           V_peak=q["Vpeak"], a=q["a"], tau_w=q["tau_w"], b=q["b"], t_ref=q["t_ref"])
        kw["v0"] = -65.  # the published initial potential
        return AdExCell(pop, n[pop], integration_type=integrator, receptors=receptors, **kw)

    with Context(name):
        cells = {pop: cell(pop) for pop in ("RS", "FS")}
        projections = {
            src + tgt: SparseProjection(f"{src}_{tgt}", (n[src], n[tgt]), p=p, allow_autapses=src != tgt,
                                        weight=weight[src], delay=0, key=keys[i])
            for i, (src, tgt) in enumerate((("RS", "RS"), ("RS", "FS"), ("FS", "RS"), ("FS", "FS")))}
        drives = {pop: PoissonDrive(f"ext_{pop}", n[pop], rate=ext["rate_hz"], weight=syn["Qe"], key=keys[4 + i],
                                    n_sources=PoissonDrive.binomial_sources(n[pop], ext["N_ext"], ext["p"],
                                                                            seed=seed + i))
                  for i, pop in enumerate(("RS", "FS"))}
        for key, proj in projections.items():
            cells[key[:2]].s >> proj.inputs
        for pop, c in cells.items():
            Summation(projections["RS" + pop].outputs, drives[pop].outputs) >> c.exc
            projections["FS" + pop].outputs >> c.inh
        advance, reset = MethodProcess("advance"), MethodProcess("reset")
        for part in (*drives.values(), *projections.values(), *cells.values()):
            advance >> part.advance_state
            reset >> part.reset
    return RSFSNetwork(advance, reset, cells["RS"], cells["FS"], projections, drives)
