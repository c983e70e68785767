r"""Event-driven sparse projections: connectivity, the compact (ELL) layout, and delivery of
spikes into a ring buffer. Pure array functions, no ngcsimlib import; the
:class:`~ngc_adex.SparseProjection` component is a thin shell around them.

A projection from ``n_pre`` to ``n_post`` neurons is a list of connections
``(pre, post, weight, delay)`` (delay in steps, an integer >= 0). Its output in
step ``t`` is::

    out_t[b, j] = sum over connections c with post_c = j of  weight_c * s_{t - delay_c}[b, pre_c]

Layout: pre-major padded out-lists ("ELL"): ``targets``, ``weights`` and
``delays`` shaped ``(n_pre, max_out)``, row ``i`` holding the out-connections
of neuron ``i``; pads target the dump slot ``n_post`` with weight 0. Memory
is ``n_pre * max_out`` (the largest out-degree; for random rules a few
standard deviations above the mean).

Delivery in a step: the indices of the presynaptic neurons that spiked are
compacted into a buffer of ``max_spikes`` entries (:func:`compact`: a blocked
prefix sum and a binary search), and each spike's row is added into a ring
buffer of ``max_delay + 1`` slots, flat ``(slots, batch, n_post + 1)``
(:func:`deliver`), by a loop over the step's spikes (a row's targets are
distinct, so a row is one gather, add and write back, which XLA:CPU
vectorizes, where a scatter-add of all rows at once is serial). Work per step
is proportional to (spikes) x (max_out), never ``n_pre x n_post``. Spikes
beyond the buffer are found one by one in the running count: no spike is
dropped.
"""
import math
from functools import partial

import numpy as np
import jax
import jax.numpy as jnp

#: the connectivity rules (NEST's names)
RULES = ("pairwise_bernoulli", "fixed_indegree", "fixed_outdegree", "all_to_all")


# ----------------------------------------------------------------------------
# connectivity (numpy, built once from a seed)
# ----------------------------------------------------------------------------
def seed_from_key(key):
    """An integer seed (numpy's ``default_rng``) from a JAX PRNG key, raw or typed."""
    try:
        data = jax.random.key_data(key)
    except (TypeError, ValueError):
        data = key
    words = np.asarray(data, dtype=np.uint32).ravel()
    return int(sum(int(w) << (32 * i) for i, w in enumerate(words)))


def _pairwise_bernoulli(rng, n_pre, n_post, p, allow_autapses):
    """Each pair (i, j) connected with probability p, independently: the gaps between
    connections in the row-major list of pairs are geometric."""
    total = n_pre * n_post
    if p <= 0. or total == 0:
        idx = np.zeros(0, np.int64)
    elif p >= 1.:
        idx = np.arange(total, dtype=np.int64)
    else:
        chunks, pos = [], -1
        while True:
            want = int(max(1024, (total - pos) * p * 1.02 + 10 * math.sqrt(total * p)))
            steps = np.cumsum(rng.geometric(p, size=want), dtype=np.int64) + pos
            chunks.append(steps[steps < total])
            if steps[-1] >= total:
                break
            pos = int(steps[-1])
        idx = np.concatenate(chunks)
    pre, post = np.divmod(idx, n_post)
    if not allow_autapses:
        keep = pre != post
        pre, post = pre[keep], post[keep]
    return pre, post


def _distinct(rng, rows, k, n, allow_self):
    """For each row r, k distinct integers in [0, n) (without r itself unless ``allow_self``;
    r < n assumed then), uniformly: rejection of duplicates, row by row in bulk."""
    out = np.empty((rows, k), np.int64)
    if k == 0 or rows == 0:
        return out
    r_idx = np.arange(rows)[:, None]
    n_eff = n if allow_self else n - 1

    def draw(shape, who):
        x = rng.integers(0, n_eff, size=shape)
        if not allow_self:
            x = x + (x >= who)  # skip the row's own index
        return x

    if 2 * k > n_eff:  # dense: a random permutation of each row's candidates (in blocks of rows)
        block = max(1, (1 << 22) // max(n, 1))
        for start in range(0, rows, block):
            stop = min(rows, start + block)
            keys = rng.random((stop - start, n))
            if not allow_self:
                keys[np.arange(stop - start), np.arange(start, stop)] = 2.  # never among the k smallest
            out[start:stop] = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < n else np.argsort(keys, axis=1)
        return out
    out[:] = draw((rows, k), r_idx)
    while True:
        order = np.argsort(out, axis=1, kind="stable")
        srt = np.take_along_axis(out, order, axis=1)
        dup_sorted = np.zeros_like(srt, dtype=bool)
        dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
        if not dup_sorted.any():
            return out
        dup = np.zeros_like(dup_sorted)
        np.put_along_axis(dup, order, dup_sorted, axis=1)
        rr, cc = np.nonzero(dup)
        out[rr, cc] = draw(len(rr), rr)


def connect(rule, n_pre, n_post, seed, p=None, indegree=None, outdegree=None, allow_autapses=True):
    """Connections ``(pre, post)`` (int64 arrays, sorted by pre then post) of a rule.

    Args:
        rule: one of :data:`RULES`: "pairwise_bernoulli" (each pair with probability ``p``),
            "fixed_indegree" (each target gets ``indegree`` distinct sources, uniformly),
            "fixed_outdegree" (each source gets ``outdegree`` distinct targets),
            "all_to_all"

        n_pre, n_post: population sizes

        seed: integer seed (the same seed gives the same connections)

        allow_autapses: whether pre index i may connect to post index i (Default: True)

    Multapses (two connections of the same pair) never occur.
    """
    rng = np.random.default_rng(seed)
    if rule == "pairwise_bernoulli":
        pre, post = _pairwise_bernoulli(rng, n_pre, n_post, p, allow_autapses)
    elif rule == "all_to_all":
        pre, post = _pairwise_bernoulli(rng, n_pre, n_post, 1., allow_autapses)
    elif rule == "fixed_indegree":
        src = _distinct_rows(rng, n_post, indegree, n_pre, allow_autapses)
        post, pre = np.repeat(np.arange(n_post), indegree), src.ravel()
    elif rule == "fixed_outdegree":
        tgt = _distinct_rows(rng, n_pre, outdegree, n_post, allow_autapses)
        pre, post = np.repeat(np.arange(n_pre), outdegree), tgt.ravel()
    else:
        raise ValueError(f"rule must be one of {RULES}; got {rule!r}")
    order = np.lexsort((post, pre))
    return pre[order].astype(np.int64), post[order].astype(np.int64)


def _distinct_rows(rng, rows, k, n, allow_self):
    """:func:`_distinct`, where rows from ``n`` on (no index of their own among the ``n``
    candidates) draw with nothing excluded."""
    if allow_self or rows <= n:
        return _distinct(rng, rows, k, n, allow_self)
    out = np.empty((rows, k), np.int64)
    out[:n] = _distinct(rng, n, k, n, False)
    out[n:] = _distinct(rng, rows - n, k, n, True)
    return out


def ell_layout(pre, post, weight, delay, n_pre, n_post, dtype=np.float32):
    """The padded pre-major layout of connections.

    Returns:
        ``(targets, weights, delays)``, each ``(n_pre, max_out)`` (int32, ``dtype``, int32):
        the out-connections of neuron i in row i, in the order given; pads target
        ``n_post`` (the dump slot) with weight 0 and delay 0. ``max_out >= 1``.
    """
    pre = np.asarray(pre, np.int64)
    n = pre.size
    weight = np.broadcast_to(np.asarray(weight, np.float64), (n,))
    delay = np.broadcast_to(np.asarray(delay, np.int64), (n,))
    order = np.argsort(pre, kind="stable")
    pre_s = pre[order]
    deg = np.bincount(pre_s, minlength=n_pre)
    max_out = max(1, int(deg.max()) if n else 1)
    start = np.concatenate([[0], np.cumsum(deg)[:-1]])
    col = np.arange(n) - start[pre_s]
    targets = np.full((n_pre, max_out), n_post, np.int32)
    weights = np.zeros((n_pre, max_out), dtype)
    delays = np.zeros((n_pre, max_out), np.int32)
    targets[pre_s, col] = np.asarray(post, np.int64)[order]
    weights[pre_s, col] = weight[order]
    delays[pre_s, col] = delay[order]
    return targets, weights, delays


def dense_matrices(targets, weights, delays, n_post):
    """The projection as dense matrices, ``(max_delay + 1, n_pre, n_post)`` (numpy; a reference
    for tests): ``out_t = sum_d s_{t-d} @ W[d]``."""
    targets, weights, delays = (np.asarray(a) for a in (targets, weights, delays))
    n_pre = targets.shape[0]
    W = np.zeros((int(delays.max(initial=0)) + 1, n_pre, n_post + 1), np.float64)
    rows = np.broadcast_to(np.arange(n_pre)[:, None], targets.shape)
    np.add.at(W, (delays, rows, targets), weights.astype(np.float64))
    return W[..., :n_post]


# ----------------------------------------------------------------------------
# delivery (JAX)
# ----------------------------------------------------------------------------
#: block of the blocked prefix sum in :func:`spike_ranks`
RANK_BLOCK = 64


def spike_ranks(spikes):
    """Running count of the nonzero entries along each row of ``spikes`` (batch, n), as floats
    (exact integers below 2^24): a blocked prefix sum, each block of :data:`RANK_BLOCK` by a
    product with a triangular matrix and the blocks' offsets by a short cumulative sum. XLA:CPU
    computes ``jnp.cumsum`` of a long row as a reduce-window several times slower."""
    batch, n = spikes.shape
    dtype = jnp.zeros(()).dtype
    blocks = -(-n // RANK_BLOCK)
    nz = (spikes != 0).astype(dtype)
    nz = jnp.pad(nz, ((0, 0), (0, blocks * RANK_BLOCK - n))).reshape(batch, blocks, RANK_BLOCK)
    tri = jnp.triu(jnp.ones((RANK_BLOCK, RANK_BLOCK), dtype))
    within = jnp.matmul(nz, tri, precision=jax.lax.Precision.HIGHEST)
    totals = within[..., -1]
    offsets = jnp.cumsum(totals, axis=1) - totals
    return (within + offsets[..., None]).reshape(batch, -1)[:, :n]


def compact(spikes, size, offset=0, ranks=None):
    """Indices of the nonzero entries of each row of ``spikes`` (batch, n), from the
    ``offset``-th nonzero on, at most ``size`` of them, in increasing order; pads are ``n``.

    Args:
        ranks: :func:`spike_ranks` of ``spikes`` when already computed

    Returns:
        (indices (batch, size) int32, nonzero count per row (batch,) int32)
    """
    if ranks is None:
        ranks = spike_ranks(spikes)
    wanted = (jnp.asarray(offset, jnp.int32) + jnp.arange(1, size + 1, dtype=jnp.int32)).astype(ranks.dtype)
    idx = jax.vmap(lambda r: jnp.searchsorted(r, wanted, side="left"))(ranks)  # n where past the last
    return idx.astype(jnp.int32), ranks[:, -1].astype(jnp.int32)


def _add_row(flat, i, b, spikes, targets, weights, delays, head, n_slots, batch, width, uniform_delay):
    """Adds the out-connections of pre neuron ``i`` (batch row ``b``) into the flat ring buffer:
    a gather of the row's entries, an add and a write back. A neuron's targets are distinct
    (no multapses), so the positions are distinct but for the pads, which all land in the dump
    slot (whose value is discarded); with one delay they are also increasing."""
    amp = spikes[b, i].astype(weights.dtype)
    if uniform_delay is None:
        slot = head + delays[i]
        slot = jnp.where(slot >= n_slots, slot - n_slots, slot)
    else:
        slot = (head + uniform_delay) % n_slots
    pos = (slot * batch + b) * width + targets[i]
    return flat.at[pos].set(flat[pos] + (weights[i] * amp).astype(flat.dtype), mode="promise_in_bounds",
                            unique_indices=True, indices_are_sorted=uniform_delay is not None)


def deliver(buffer, head, spikes, targets, weights, delays, max_spikes, uniform_delay=None):
    """Delivers one step's spikes into the ring buffer.

    Args:
        buffer: ring buffer ``(n_slots, batch, n_post + 1)``; slot ``head`` is the current step,
            ``(head + d) % n_slots`` the step d later; entry ``n_post`` is the dump slot

        head: current slot (int32 scalar)

        spikes: presynaptic spikes ``(batch, n_pre)`` (any nonzero value is an event and scales
            the weights, as a dense synapse's ``s @ W`` does)

        targets, weights, delays: the ELL layout (:func:`ell_layout`)

        max_spikes: spikes compacted at once (static int); the spikes beyond them are found one
            by one (a binary search of the running count each), so none is dropped

        uniform_delay: None, or the delay (static int) of every connection (then ``delays`` is
            not read)

    Returns:
        the buffer with every connection's contribution added
    """
    n_slots, batch, width = buffer.shape
    flat = buffer.reshape(-1)
    targets, weights = jnp.asarray(targets), jnp.asarray(weights)
    delays = None if uniform_delay is not None else jnp.asarray(delays)
    k = int(max_spikes)
    ranks = spike_ranks(spikes)
    idx, count = compact(spikes, k, ranks=ranks)
    add = partial(_add_row, spikes=spikes, targets=targets, weights=weights, delays=delays, head=head,
                  n_slots=n_slots, batch=batch, width=width, uniform_delay=uniform_delay)
    dtype = ranks.dtype
    for b in range(batch):
        # one row update per spike (a loop over the step's spikes, not over a padded buffer)
        flat = jax.lax.fori_loop(0, jnp.minimum(count[b], k), lambda j, fl, b=b: add(fl, idx[b, j], b), flat)
        flat = jax.lax.fori_loop(k, count[b], lambda j, fl, b=b: add(
            fl, jnp.searchsorted(ranks[b], (j + 1).astype(dtype), side="left").astype(jnp.int32), b), flat)
    return flat.reshape(n_slots, batch, width)


def pop_slot(buffer, head):
    """``(output, buffer, next head)``: the current slot's sums without the dump entry,
    the buffer with that slot cleared, and the head moved on by one step."""
    n_slots, batch, width = buffer.shape
    out = jax.lax.dynamic_index_in_dim(buffer, head, axis=0, keepdims=False)[:, :width - 1]
    buffer = jax.lax.dynamic_update_index_in_dim(buffer, jnp.zeros((batch, width), buffer.dtype), head, axis=0)
    nxt = head + 1
    return out, buffer, jnp.where(nxt >= n_slots, 0, nxt).astype(head.dtype)


def step(buffer, head, spikes, targets, weights, delays, max_spikes, uniform_delay=None):
    """One step of a projection: deliver ``spikes`` then pop the current slot.

    Returns:
        (output (batch, n_post), buffer, head)
    """
    buffer = deliver(buffer, head, spikes, targets, weights, delays, max_spikes, uniform_delay)
    return pop_slot(buffer, head)
