"""Learning through the numerics (issue 17, point 1: differentiable parameters).

Differentiable parameters: the coefficients derived from traced parameters
equal the concrete ones (to float32 rounding), concrete parameters still give
the bits of the previous release (against a baseline checkout: ``git archive``
of the branch ``main`` or ``NGC_ADEX_BASELINE=<checkout>``), and ``jax.grad``
of spike times with respect to every parameter of a "precise" simulation
(:func:`ngc_adex.numerics.simulate_params`) matches central differences of the
scipy reference (DOP853, rtol 1e-11), under ``jax.jit`` and ``jax.vmap``.
"""
import importlib
import os
import shutil
import subprocess
import sys

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from ngc_adex import numerics, preset, preset_kwargs
from ngc_adex.numerics import AdExParams, simulate_params, spike_time
from ngc_adex.params import NAUD_PATTERNS
from ngc_adex.reference import spike_times

DT = 0.1
#: input currents (pA) of the gradient checks, on the Naud "adapting" preset (b = 60 pA, tau_w = 300 ms)
CURRENTS = (400., 700., 1000., 1500.)
#: duration (ms) of the simulations: the second spike at 400 pA comes at ~40 ms
N_STEPS = 600
#: relative step of the central differences of the reference (its spike times are exact to ~1e-10 ms)
FD_REL = 1e-4


def _mixed_params():
    """The eight Naud presets as one population, with a smooth crossing, an integrate-and-fire lane,
    a disconnected input, a reset above thr and refractoriness in all but one lane."""
    kws = [preset_kwargs(n) for n in NAUD_PATTERNS]
    p = {k: np.array([kw[k] for kw in kws], dtype=np.float64) for k in AdExParams._fields}
    p["refract_time"] = np.full(len(kws), 2.)
    p["thr"][1] = p["intrinsic_mem_thr"][1] - 3.
    p["v_sharpness"][2] = 0.
    p["resist_m"][3] = 0.
    p["v_reset"][4] = p["thr"][4] + 5.
    p["refract_time"][5] = 0.
    return {k: v[None, :] for k, v in p.items()}


def test_traced_coefficients_match_concrete():
    p = _mixed_params()
    concrete = numerics.coefficients(AdExParams(**p))
    traced = jax.jit(lambda q: numerics.coefficients(q))(AdExParams(**{k: jnp.asarray(v) for k, v in p.items()}))
    for name, a, b in zip(numerics.Coefficients._fields, concrete, traced):
        if name == "receptors":
            continue
        assert a.dtype == b.dtype, name
        if a.dtype == bool:
            np.testing.assert_array_equal(np.broadcast_to(a, b.shape), b, err_msg=name)
        else:  # float32 arithmetic against float64 rounded once
            np.testing.assert_allclose(np.broadcast_to(a, b.shape), b, rtol=2e-6, atol=1e-30, err_msg=name)


def _baseline():
    """The numerics of the baseline checkout (``NGC_ADEX_BASELINE``, else the branch ``main`` of
    this repository), imported as ``ngc_adex_baseline``; None where neither is available."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ngc_adex_baseline_{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    checkout = os.environ.get("NGC_ADEX_BASELINE")
    if checkout:
        shutil.copytree(os.path.join(checkout, "ngc_adex"), os.path.join(tmp, "ngc_adex_baseline"))
    else:
        try:
            archive = subprocess.run(["git", "-C", root, "archive", "main", "ngc_adex"], capture_output=True,
                                     check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return None
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        os.rename(os.path.join(tmp, "ngc_adex"), os.path.join(tmp, "ngc_adex_baseline"))
    sys.path.insert(0, tmp)
    try:
        return importlib.import_module("ngc_adex_baseline.numerics")
    finally:
        sys.path.remove(tmp)


def _run_bits(mod, method, steps=2000):
    """Every state array after ``steps`` steps of the mixed population and its spike raster."""
    c = mod.coefficients(mod.AdExParams(**_mixed_params()))
    z = jnp.zeros((1, len(NAUD_PATTERNS)), jnp.float32)
    j = jnp.linspace(0., 800., len(NAUD_PATTERNS), dtype=jnp.float32)[None, :]
    dt = jnp.float32(DT)
    step = lambda s, i: (mod.advance(s, j * (1. + 0.3 * jnp.sin(i * 0.01)), (i + 1.) * dt, dt, c, method, True),
                         s.s)
    final, raster = jax.jit(lambda s: jax.lax.scan(step, s, jnp.arange(steps, dtype=jnp.float32)))(
        mod.AdExState(z - 65., z, z, z, z, z))
    return c, [np.asarray(a) for a in (*final, raster)]


@pytest.mark.slow
def test_concrete_parameters_bitwise_as_baseline():
    """Concrete parameters: the same coefficients and the same 2000 steps, bit for bit, as the baseline
    (every integrator, refractoriness on, the mixed population)."""
    base = _baseline()
    if base is None:
        pytest.skip("no baseline checkout (set NGC_ADEX_BASELINE, or run inside the git repository)")
    for method in numerics.METHODS:
        (c_new, new), (c_old, old) = _run_bits(numerics, method), _run_bits(base, method)
        if method == numerics.METHODS[0]:
            for name, a, b in zip(numerics.Coefficients._fields, c_new, c_old):
                if name != "receptors":
                    assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), name
        for k, (a, b) in enumerate(zip(new, old)):
            assert a.tobytes() == b.tobytes(), (method, k)
        assert new[-1].sum() > 0, method


def _adapting():
    """The Naud "adapting" preset: cell parameters (refractory 1 ms) and the physical dict."""
    p = preset("adapting")
    return AdExParams(**{k: v for k, v in preset_kwargs("adapting", t_ref=1.).items() if k in AdExParams._fields}), p


def _reference_times(P, current):
    """First and second spike times (ms) of the scipy reference for cell parameters ``P`` (floats)."""
    g_l = 1. / P.resist_m
    q = dict(C=P.tau_m * g_l, gL=g_l, EL=P.v_rest, VT=P.intrinsic_mem_thr, DT=P.v_sharpness, a=P.a,
             tau_w=P.tau_w, b=P.b, Vr=P.v_reset, V_peak=P.thr)
    return spike_times(q, N_STEPS * DT, I=current, t_ref=P.refract_time, rtol=1e-11)[:2]


def _first_two(P, j):
    states = simulate_params(P, j, N_STEPS, DT, "precise").states
    return spike_time(states, 0)[0, 0], spike_time(states, 1)[0, 0]


#: (parameter, spike) of the gradient check against the reference: the first spike for the parameters
#: that shape the way up to it, the second for those that act at or after the first (b, v_reset,
#: refract_time); the relative error's median over CURRENTS must stay below 1e-3
GRAD_CASES = [("j", 0), ("a", 0), ("tau_w", 0), ("v_sharpness", 0), ("intrinsic_mem_thr", 0), ("tau_m", 0),
              ("resist_m", 0), ("v_rest", 0), ("b", 1), ("v_reset", 1), ("refract_time", 1)]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_spike_time_gradients_match_reference(dtype):
    """jax.grad of the first and second spike times of "precise" (dt = 0.1 ms; float32, and float64
    under jax_enable_x64), jitted and vmapped over the currents, against central differences of the
    reference."""
    P, _ = _adapting()
    with jax.enable_x64(dtype == "float64"):
        jac = jax.jit(jax.vmap(jax.jacrev(_first_two, argnums=(0, 1)), in_axes=(None, 0)))
        J = jax.tree_util.tree_map(np.asarray, jac(P, jnp.asarray(CURRENTS, dtype)))
    assert J[0][1].dtype == dtype
    errors = {}
    for i, current in enumerate(CURRENTS):
        for name, k in GRAD_CASES:
            x = current if name == "j" else getattr(P, name)
            eps = FD_REL * max(abs(x), 1.)
            if name == "j":
                plus, minus, ours = _reference_times(P, current + eps), _reference_times(P, current - eps), J[k][1][i]
            else:
                plus, minus = (_reference_times(P._replace(**{name: x + s * eps}), current) for s in (1., -1.))
                ours = getattr(J[k][0], name)[i]
            fd = (plus[k] - minus[k]) / (2. * eps)
            errors.setdefault(name, []).append(abs(float(ours) - fd) / abs(fd))
    medians = {name: float(np.median(e)) for name, e in errors.items()}
    assert all(m <= 1e-3 for m in medians.values()), medians


@pytest.mark.slow
def test_gradients_every_parameter_under_vmap():
    """jax.grad with respect to every field, vmapped over parameter sets: finite, nonzero where the
    parameter acts, and each set's gradient that of its own run."""
    P, _ = _adapting()
    sets = AdExParams(*(jnp.asarray([x, x * 1.05], jnp.float32) for x in P))
    loss = lambda q: _first_two(q, 600.)[1]
    batched = jax.jit(jax.vmap(jax.grad(loss)))(sets)
    single = jax.jit(jax.grad(loss))(AdExParams(*(x[1] for x in sets)))
    for name, g, g1 in zip(AdExParams._fields, batched, single):
        assert np.all(np.isfinite(np.asarray(g))), name
        np.testing.assert_allclose(np.asarray(g)[1], np.asarray(g1), rtol=1e-4, atol=1e-9, err_msg=name)
        assert name == "thr" or np.all(np.asarray(g) != 0.), name  # thr: ~1e-10 ms/mV (the upswing)
