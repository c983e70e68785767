"""Surrogate gradients of the spike output (issue 17, point 2): ``s`` is bitwise unchanged with an
estimator, its derivative is the estimator's (against ngc-learn's own ``d_spike_fx``), and
``jax.grad`` through a scan over ``s`` is nonzero with an estimator and zero without."""
import numpy as np
import jax
import jax.numpy as jnp
import pytest

from ngc_adex import numerics, preset_kwargs
from ngc_adex.numerics import AdExParams
from ngc_adex.numerics.surrogate import ESTIMATORS, d_spike, emit

DT = 0.1

def test_estimators_as_ngclearn():
    """Each estimator's derivative is ngc-learn's d_spike_fx at its defaults (thr = 0)."""
    from ngclearn.utils import surrogate_fx
    x = jnp.linspace(-8., 8., 1601, dtype=jnp.float32)
    for name in ESTIMATORS:
        theirs = getattr(surrogate_fx, f"{name}_estimator")()[1](x, 0.)
        np.testing.assert_allclose(d_spike(x, name), theirs, rtol=1e-6, atol=1e-7, err_msg=name)


def test_emit_value_and_derivative():
    s = jnp.asarray([[0., 1., 0., 1.]], jnp.float32)
    x = jnp.asarray([[-3., 0.5, -0.2, 7.]], jnp.float32)
    tx = jnp.asarray([[1., 2., -1., 0.5]], jnp.float32)
    for name in ESTIMATORS:
        out, tangent = jax.jvp(lambda x: emit(s, x, name), (x,), (tx,))
        assert out.tobytes() == s.tobytes() and tangent.shape == s.shape
        np.testing.assert_allclose(tangent, d_spike(x, name) * tx, rtol=1e-7, err_msg=name)
        assert float(jax.grad(lambda x: emit(s, x, name).sum())(x)[0, 1]) == pytest.approx(float(d_spike(x, name)[0, 1]))


def _spike_scan(method, surrogate, steps=300):
    """(sum of the spikes of a scan of ``steps`` steps, as a function of the input current; the states)."""
    kw = preset_kwargs("adapting")
    c = numerics.coefficients(AdExParams(**{k: kw[k] for k in AdExParams._fields}))
    z = jnp.zeros((1, 3), jnp.float32)

    def run(j):
        def step(state, i):
            out = numerics.advance(state, j, (i + 1.) * DT, DT, c, method, False, surrogate=surrogate)
            new = out if surrogate is None else out[0]
            return new, new
        return jax.lax.scan(step, numerics.AdExState(z + kw["v0"], z, z, z, z, z),
                            jnp.arange(steps, dtype=jnp.float32))[1]
    return run


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_surrogate_forward_bitwise_and_gradient(method):
    j = jnp.asarray([[300., 600., 900.]], jnp.float32)
    plain = jax.jit(_spike_scan(method, None))(j)
    with_sg = jax.jit(_spike_scan(method, "arctan"))(j)
    for a, b in zip(plain, with_sg):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    assert float(plain.s.sum()) > 0
    grad_plain = jax.grad(lambda j: _spike_scan(method, None)(j).s.sum())(j)
    grad_sg = jax.grad(lambda j: _spike_scan(method, "arctan")(j).s.sum())(j)
    assert np.all(np.asarray(grad_plain) == 0.)
    assert np.all(np.isfinite(np.asarray(grad_sg))) and np.all(np.asarray(grad_sg) > 0.)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["midpoint", "ralston", "rk4", "precise"])
def test_surrogate_forward_bitwise_and_gradient_slow(method):
    test_surrogate_forward_bitwise_and_gradient(method)


def test_cell_surrogate_compartment():
    """``surrogate_type``: validated; the cell's spikes and states are those without it, and its
    ``surrogate`` compartment holds the estimator's derivative (arctan: in (0, 1/pi])."""
    from ngclearn import Context
    from conftest import processes, unique_name
    from ngc_adex import AdExCell
    with pytest.raises(ValueError, match="surrogate_type must be None .*'arctan'"):
        AdExCell("bad", 1, surrogate_type="secant_lif")
    runs = []
    for surrogate in (None, "arctan"):
        with Context(unique_name("surrogate")):
            z = AdExCell("z", 3, integration_type="rk4", surrogate_type=surrogate, **preset_kwargs("adapting"))
            advance, reset = processes(z, watch=(z.s, z.v, z.w, z.t_spike) + ((z.surrogate,) if surrogate else ()))
        reset.run()
        z.j.set(jnp.asarray([[300., 600., 900.]], jnp.float32))
        runs.append([np.asarray(o) for o in advance.scan(jnp.array(advance.pack_rows(
            400, t=lambda i: (i + 1) * DT, dt=DT)))[1]])
    for a, b in zip(runs[0], runs[1]):
        assert a.tobytes() == b.tobytes()
    ds = runs[1][-1]
    assert runs[0][0].sum() > 0 and np.all(ds > 0.) and np.all(ds <= 1. / np.pi)
    assert "surrogate_type" in AdExCell.help()["hyperparameters"]
