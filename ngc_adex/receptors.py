"""Receptor ports of :class:`~ngc_adex.AdExCell`: their specification, validation and presets,
and the compartment through which the compiled step reads every port at once.

A receptor is a dict ``{"name", "kind", "tau_decay", "tau_rise", "e_rev"}``:
``kind`` one of "exp", "alpha", "beta" (see :mod:`ngc_adex.numerics.receptors`),
time constants in ms (``tau_rise`` for "beta" only, below ``tau_decay``),
``e_rev`` the reversal potential in mV of a conductance receptor (increments
in nS) or None for a current receptor (increments in pA). Each receptor is a
port of the cell: an input compartment named ``name`` that a synapse is wired
into (``W.outputs >> cell.ampa``), holding the summed weights of the
presynaptic spikes of the step.
"""
import ast
import keyword
import math

import jax.numpy as jnp
from ngclearn import Compartment

from .numerics.receptors import KINDS, ReceptorParams

#: NEST's receptor defaults (ms, mV): aeif_cond_exp / aeif_cond_alpha (E_ex 0, E_in -85,
#: tau_syn_ex 0.2, tau_syn_in 2) and aeif_psc_exp / aeif_psc_alpha (tau_syn_ex 0.2, tau_syn_in 2)
RECEPTOR_PRESETS = {
    "aeif_cond_exp": ({"name": "exc", "kind": "exp", "tau_decay": 0.2, "e_rev": 0.},
                      {"name": "inh", "kind": "exp", "tau_decay": 2., "e_rev": -85.}),
    "aeif_cond_alpha": ({"name": "exc", "kind": "alpha", "tau_decay": 0.2, "e_rev": 0.},
                        {"name": "inh", "kind": "alpha", "tau_decay": 2., "e_rev": -85.}),
    "aeif_psc_exp": ({"name": "exc", "kind": "exp", "tau_decay": 0.2, "e_rev": None},
                     {"name": "inh", "kind": "exp", "tau_decay": 2., "e_rev": None}),
    "aeif_psc_alpha": ({"name": "exc", "kind": "alpha", "tau_decay": 0.2, "e_rev": None},
                       {"name": "inh", "kind": "alpha", "tau_decay": 2., "e_rev": None}),
}

_KEYS = ("name", "kind", "tau_decay", "tau_rise", "e_rev")


def _positive(where, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where} must be a finite number > 0 ms; got {value!r}")
    return float(value)


def validate_receptors(receptors, reserved):
    """The receptors as ``(names, ReceptorParams tuple)``; raises ValueError naming the
    offending receptor and key. ``reserved``: attribute names a port may not take."""
    if receptors is None:
        return (), ()
    if isinstance(receptors, str):
        if receptors not in RECEPTOR_PRESETS:
            raise ValueError(f"receptors: unknown preset {receptors!r}; presets: {', '.join(RECEPTOR_PRESETS)}")
        receptors = RECEPTOR_PRESETS[receptors]
    names, params = [], []
    for i, spec in enumerate(receptors):
        where = f"receptors[{i}]"
        if not isinstance(spec, dict):
            raise ValueError(f"{where} must be a dict with keys {', '.join(_KEYS)}; got {spec!r}")
        unknown = set(spec) - set(_KEYS)
        if unknown:
            raise ValueError(f"{where} has unknown key(s) {sorted(unknown)}; allowed: {', '.join(_KEYS)}")
        name = spec.get("name")
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            raise ValueError(f"{where}['name'] must be a Python identifier not starting with '_'; got {name!r}")
        if name in reserved or name in names:
            raise ValueError(f"{where}['name'] {name!r} is taken (by the cell or another receptor)")
        kind = spec.get("kind", "exp")
        if kind not in KINDS:
            raise ValueError(f"{where}['kind'] must be one of {KINDS}; got {kind!r}")
        tau_decay = _positive(f"{where}['tau_decay']", spec.get("tau_decay"))
        tau_rise = spec.get("tau_rise")
        if kind == "beta":
            tau_rise = _positive(f"{where}['tau_rise']", tau_rise)
            if not tau_rise < tau_decay:
                raise ValueError(f"{where}['tau_rise'] must be < tau_decay = {tau_decay} ms for a \"beta\" "
                                 f"receptor (\"alpha\" is the equal-time-constant case); got {tau_rise}")
        elif tau_rise is not None:
            raise ValueError(f"{where}['tau_rise'] applies to \"beta\" receptors only; got {tau_rise!r}")
        e_rev = spec.get("e_rev")
        if e_rev is not None and (isinstance(e_rev, bool) or not isinstance(e_rev, (int, float))
                                  or not math.isfinite(e_rev)):
            raise ValueError(f"{where}['e_rev'] must be a finite reversal potential (mV), or None for a "
                             f"current receptor; got {e_rev!r}")
        names.append(name)
        params.append(ReceptorParams(kind, tau_decay, tau_rise, None if e_rev is None else float(e_rev)))
    return tuple(names), tuple(params)


def _ngc_adex_stack_ports(values):
    return jnp.stack([jnp.asarray(v) for v in values])


class PortInputs(Compartment):
    """Every port's input stacked along a leading receptor axis, read-only: compiled code reads
    it as one value (each port as its own wiring resolves it). Not saved: the ports are."""

    def __init__(self, ports, initial_value):
        super().__init__(initial_value, display_name="Receptor inputs", auto_save=False)
        self._ports = tuple(ports)

    def _get_value(self):
        return _ngc_adex_stack_ports([port.get() for port in self._ports])

    def _to_ast(self, node, ctx):
        elts = [port._to_ast(ast.Name(id="_", ctx=ast.Load()), ctx) for port in self._ports]
        return ast.Call(func=ast.Name(id="_ngc_adex_stack_ports", ctx=ast.Load()),
                        args=[ast.List(elts=elts, ctx=ast.Load())], keywords=[])
