r"""Poisson counts from one uniform each, by inversion of the distribution function.

The count N ~ Poisson(lam) is the smallest n with ``u <= F(n)``, ``F(n) = sum_{k<=n}
e^(-lam) lam^k / k!``, for ``u`` uniform on [0, 1). The terms are built by the
recurrence ``p_k = p_{k-1} lam / k`` in a loop that runs while any entry still has
``u > F``: as many rounds as the largest count of the step plus one (a few for small
``lam``), each a pass over the array. ``jax.random.poisson`` draws by rejection and
costs several times more per entry at small ``lam``. Where ``F`` is within the
rounding of the dtype of 1 (a tail below ~6e-8 in float32) the loop stops: the
distribution is exact up to that rounding. For ``lam`` above :data:`LAM_INVERSION`
(where e^(-lam) loses precision and the loop grows) the counts come from
``jax.random.poisson`` instead (a branch taken for the whole array).
"""
import jax
import jax.numpy as jnp

#: largest mean counted by inversion; above it, jax.random.poisson
LAM_INVERSION = 16.


def _inverse_cdf(u, lam):
    cap = jnp.ceil(jnp.max(lam) + 12. * jnp.sqrt(jnp.max(lam)) + 12.)  # P(N > cap) far below rounding
    term = jnp.exp(-lam)

    def body(c):
        k, n, cdf, term = c
        above = u > cdf
        k = k + 1.
        term = term * lam / k
        return k, n + above.astype(n.dtype), cdf + term, term

    def more(c):
        k, _, cdf, _ = c
        return jnp.any(u > cdf) & (k < cap)

    _, n, _, _ = jax.lax.while_loop(more, body, (jnp.zeros((), u.dtype), jnp.zeros_like(u), term, term))
    return n


def poisson_counts(key, lam, dtype=None):
    """Poisson counts of means ``lam`` (an array, >= 0), one uniform per entry.

    Args:
        key: JAX PRNG key

        lam: mean counts (array; its shape is the output's)

        dtype: float dtype of the counts (Default: lam's float dtype, or the default float)

    Returns:
        float array of counts, shaped like ``lam``
    """
    lam = jnp.asarray(lam)
    if dtype is None:
        dtype = lam.dtype if jnp.issubdtype(lam.dtype, jnp.floating) else jnp.zeros(()).dtype
    lam = lam.astype(dtype)
    u = jax.random.uniform(key, lam.shape, dtype)
    return jax.lax.cond(jnp.max(lam, initial=0.) <= LAM_INVERSION,
                        lambda: _inverse_cdf(u, lam),
                        lambda: jax.random.poisson(key, lam).astype(dtype))


def _ngc_adex_hash32(x):
    """Wellons' "triple32" integer hash, a bijection of uint32 with near-ideal avalanche."""
    x = x ^ (x >> 17)
    x = x * jnp.uint32(0xED5AD4BB)
    x = x ^ (x >> 11)
    x = x * jnp.uint32(0xAC4C1B51)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x31848BAB)
    return x ^ (x >> 14)


def hashed_randint(seeds, counter, n):
    """Integers in [0, n) from a counter-based hash keyed by two uint32 ``seeds`` (one threefry
    draw per step): a few integer operations per number, fused into the surrounding loop, where
    XLA:CPU's threefry costs ~25 ns per number. ``x mod n`` of a hashed uint32: each value's
    probability is exact to a relative ``n / 2^32``."""
    x = _ngc_adex_hash32(counter.astype(jnp.uint32) ^ seeds[0])
    x = _ngc_adex_hash32(x + seeds[1])
    return (x % jnp.asarray(n).astype(jnp.uint32)).astype(jnp.int32)


def split_counts(key, ends, lam_source, batch, max_events, uniform=False):
    """Poisson counts per target by splitting: the step's total ``M ~ Poisson(S lam_source)``
    (``S = ends[-1]`` sources in all), each event assigned to the target whose sources it falls
    among (``ends``: cumulative source counts per target, int32) by one random integer
    (:func:`hashed_randint`); ``max_events`` events per round, as many rounds as the largest
    total needs. The counts are independent Poisson(``K_i lam_source``) (Poisson splitting),
    each target's share exact to a relative ``S / 2^32``.

    Args:
        uniform: every target has the same number of sources (the target is then drawn
            directly among the targets)

    Returns:
        float counts (batch, n_targets) in the default float dtype
    """
    n = ends.shape[0]
    dtype = jnp.zeros(()).dtype
    total_sources = ends[-1]
    k_total, k_events = jax.random.split(key)
    totals = jax.random.poisson(k_total, total_sources.astype(dtype) * lam_source, (batch,))
    seeds = jax.random.bits(k_events, (2,), jnp.uint32)
    rounds = (jnp.max(totals) + (max_events - 1)) // max_events
    rows = jnp.broadcast_to(jnp.arange(batch, dtype=jnp.int32)[:, None], (batch, max_events))
    slot = jnp.arange(max_events, dtype=jnp.int32)[None, :]
    serial = rows * max_events + slot

    def body(c):
        r, counts = c
        counter = serial + r.astype(jnp.int32) * (batch * max_events)
        if uniform:
            target = hashed_randint(seeds, counter, n)
        else:
            u = hashed_randint(seeds, counter, total_sources)
            target = jnp.searchsorted(ends, u, side="right").astype(jnp.int32)
        target = jnp.where(r * max_events + slot < totals[:, None], target, n)
        return r + 1, counts.at[rows, target].add(1., mode="drop")

    _, counts = jax.lax.while_loop(lambda c: c[0] < rounds, body,
                                   (jnp.zeros((), totals.dtype), jnp.zeros((batch, n), dtype)))
    return counts


def drive(key, sources, ends, dt, *, rate, weight, batch, method, max_events, uniform):
    """One step of a per-target Poisson drive (see :class:`~ngc_adex.PoissonDrive`).

    Args:
        key: PRNG key; sources: sources per target (n,) int; ends: their cumulative sums (n,) int32;
        dt: step (ms); rate: rate per source (Hz); weight: weight of one event

    Returns:
        (weight x counts (batch, n), next key)
    """
    key, sub = jax.random.split(key)
    lam_source = rate * dt / 1000.
    if method == "inverse_cdf":
        dtype = jnp.zeros(()).dtype
        lam = jnp.broadcast_to(sources.astype(dtype) * lam_source, (batch, sources.shape[0]))
        counts = poisson_counts(sub, lam)
    else:
        counts = split_counts(sub, ends, lam_source, batch, max_events, uniform)
    return weight * counts, key


def binomial_sources(seed, n_targets, n_ext, p):
    """Per-target source counts ``K_i ~ Binomial(n_ext, p)`` (numpy int64, from an integer seed):
    the in-degrees a pairwise-Bernoulli projection from ``n_ext`` Poisson cells would give."""
    import numpy as np
    return np.random.default_rng(seed).binomial(n_ext, p, size=n_targets)
