"""One step of a population: :func:`advance`, the single entry point of the numerics.

For every integrator but "euler" (see :mod:`~ngc_adex.numerics.euler`) a
neuron's flight starts once its refractory time is served (v held at v_reset,
w relaxing in closed form), ends at the crossing where it spikes, and the
neuron is reset there; the rest of the step (after the refractory period) is
integrated from the reset with one explicit step in (v, w)
(:func:`~ngc_adex.numerics.reset.after_spike`), so the compartments hold the
state at the end of every step. Every neuron pays for one flight and that step,
whether or not it spikes.

"precise" covers the whole step. Its series reaches a limited time
(:mod:`~ngc_adex.numerics.series`: twice the distance to the upswing's
singularity, and the time in which the input moves v by ``INPUT_REACH``
v_sharpness); a flight cut short lands at :data:`SHORT`, and every such lane
flies the step again with up to :data:`MAX_SUB_FLIGHTS` sub-flights, each from
where the last one stopped over the rest of the step. A crossing in a
sub-flight is handled as one in the first flight (reset, w + b, refractory
time, the step after the spike from the crossing time, which is a fraction of
the whole flight). The lanes are gathered into a compact buffer
(:func:`_capacity` lanes; more short lanes take further rounds of it), behind a conditional on whether any
lane landed short: a step in which no lane is short costs one reduction, and every
other lane's result is bitwise what the single flight gives. What 1 +
MAX_SUB_FLIGHTS flights leave of a step (an input that moves v by more than
about (1 + MAX_SUB_FLIGHTS) INPUT_REACH = 8.5 v_sharpness per step within
~U_DEPTH v_sharpness of intrinsic_mem_thr: a strong current, a burst of
coincident conductance input) is covered by :data:`FINISH_STEPS` "rk4" flights:
no neuron ever lags behind the step.
"""
from functools import partial
from typing import NamedTuple

import numpy as np
import jax
import jax.numpy as jnp

from . import devices, euler, receptors, runge_kutta, series
from .model import STATE_BOUND, AdExState, Coefficients, Flight, clamp_w, exp_factor, input_drive
from .ops import _static, blend, clamp, maybe_any, safe_ratio
from .reset import after_spike, clamped_share, free_span, held_v, relax_w, serve_refractory, spike_times
from .surrogate import surrogate_outputs

METHODS = ("euler", "midpoint", "heun", "ralston", "rk4", "precise")
#: accepted spellings of each integrator (any case): ngc-learn's names map to the method of
#: the same order, ngc-learn's tableau included ("heun", "ralston")
METHOD_ALIASES = {"euler": "euler", "rk1": "euler", "midpoint": "midpoint", "rk2": "midpoint",
                  "heun": "heun", "rk2_heun": "heun", "ralston": "ralston", "rk2_ralston": "ralston",
                  "rk4": "rk4", "precise": "precise"}
#: ngc-learn's integer code of each integrator (its ``intgFlag``; "precise" has none there)
INTEGRATOR_CODES = {"euler": 0, "midpoint": 1, "heun": 2, "ralston": 3, "rk4": 4, "precise": 5}
#: "precise": a flight cut short by its series' reach continues for at most this many sub-flights
#: in the step (each from where the last one stopped, over the rest of the step)
MAX_SUB_FLIGHTS = 16
#: ... and what they leave of the step is covered by this many "rk4" flights of equal span (each a
#: fraction of the step, so that rk4's error there is below its error over a whole step)
FINISH_STEPS = 4
#: the compact buffer of those sub-flights holds max(SUB_FLIGHT_LANES, n / SUB_FLIGHT_SHARE) lanes of a
#: population of n (all of them in a population up to SUB_FLIGHT_LANES); a step with more short lanes
#: fills it again, round after round
SUB_FLIGHT_LANES = 64
SUB_FLIGHT_SHARE = 64
#: v of a landing cut short by the series' reach, until it is landed again: below every state
SHORT = -4. * STATE_BOUND
SHORT_BELOW = -2. * STATE_BOUND


class Landing(NamedTuple):
    """Every neuron after its flight, as the step passes it on: ``v`` at the end of the
    step (where not ``crossed``); ``w`` at the end of the step, or, where ``crossed``,
    after the reset and the refractory time served inside the step; ``theta``: the
    fraction of the flight at the crossing (where ``crossed``)."""
    v: jnp.ndarray
    w: jnp.ndarray
    crossed: jnp.ndarray
    theta: jnp.ndarray


def check_current_shape(j, shape):
    """Raises (at trace time) unless ``j`` broadcasts to ``shape`` without
    enlarging it, so a transposed or mis-sized current never broadcasts silently."""
    j_shape = tuple(jnp.shape(j))
    try:
        ok = np.broadcast_shapes(j_shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"input current j has shape {j_shape}; expected (batch_size, n_units) = {tuple(shape)} "
                         f"or a shape that broadcasts to it (e.g. a scalar or (n_units,))")


def runtime_step(dt, dtype):
    """``dt`` as an array of ``dtype`` that XLA treats as known only at run time.

    A Python float ``dt`` (closed over in a user's ``jit(lax.scan(...))``) is a
    compile-time constant: XLA would fold arithmetic on it in another rounding
    than the float32 ops of a traced ``dt``, and fold the conditional that keeps
    a flight materialized (:mod:`~ngc_adex.numerics.devices`). Behind an
    optimization barrier the step compiles to the same program and the same bits
    whether ``dt`` is a constant or traced (``MethodProcess.scan`` passes it traced)."""
    return jax.lax.optimization_barrier(jnp.asarray(dt, dtype=dtype))


def _exp_factor_at_start(v, ref_left, dt, c, refractory, method):
    """The exponential factor where the flight starts (after the clamped share of
    the step), as the Runge-Kutta field computes it, or to float32 accuracy for "precise"."""
    if refractory:
        v = held_v(v, clamped_share(ref_left, dt), c)
    coarse = method != "precise"
    if coarse:
        v = clamp(v, -STATE_BOUND, c.v_spike)
    return exp_factor(v, c, coarse)


def _continue(f: Flight, drive, h, dt, c, syn, rounds) -> Flight:
    """Where the series' reach cut the flight ``f`` short (not crossed, ``theta`` < 1: the
    fraction of h covered), up to ``rounds`` sub-flights from where the last one stopped over
    the rest of h, each (in the same convention) only where some lane needs it. A crossing in
    a sub-flight is one of the whole flight: ``theta`` is its fraction of h. ``syn``: the
    receptors' state where the flight started."""
    def sub_flight(state):
        f, short = state
        covered = f.theta
        syn_k = None if syn is None else receptors.evolve(syn, h * covered, c.receptors)
        g = series.flight(f.v, f.w, drive, h * (1. - covered), exp_factor(f.v, c, coarse=False), c, syn_k, dt)
        # the crossing, or the end of the sub-flight, as a fraction of h
        theta = jnp.where(g.theta < 1., covered + g.theta * (1. - covered), 1.)
        g = g._replace(theta=theta)
        f = Flight(*(jnp.where(short, new, old) for new, old in zip(g, f)))
        return f, short & ~g.crossed & (g.theta < 1.)

    def finish(state):
        def piece(_, state):
            f, short = state
            covered = f.theta
            syn_k = None if syn is None else receptors.evolve(syn, h * covered, c.receptors)
            ex = exp_factor(clamp(f.v, -STATE_BOUND, c.v_spike), c, coarse=True)
            g = runge_kutta.flight(f.v, f.w, drive, h * span, ex, c, "rk4", syn_k)
            g = g._replace(v=jnp.minimum(g.v, c.v_spike), theta=covered + jnp.where(g.crossed, g.theta, 1.) * span)
            return Flight(*(jnp.where(short, new, old) for new, old in zip(g, f))), short & ~g.crossed

        span = (1. - state[0].theta) / FINISH_STEPS
        f, short = jax.lax.fori_loop(0, FINISH_STEPS, piece, state)
        return f._replace(theta=jnp.where(short, 1., f.theta)), short & False

    # a loop with a static trip count (a scan: reverse-differentiable), one flight in the program
    state = jax.lax.fori_loop(0, rounds, lambda _, s: jax.lax.cond(jnp.any(s[1]), sub_flight, lambda s: s, s),
                              (f, ~f.crossed & (f.theta < 1.)))
    # what the sub-flights leave of the step (an input that moves v by more than their reach covers):
    # FINISH_STEPS rk4 flights, which always cover their span
    return jax.lax.cond(jnp.any(state[1]), finish, lambda s: s, state)[0]


def _fly(v, w, drive, ref_left, ex0, *syn, dt, c, method, refractory, sub_flights=None) -> Landing:
    """The free flight of every neuron over its share of the step (``ex0``: the
    exponential factor where it starts; ``syn``: the receptors' g, then h, at the
    start of the step), and w after the reset where it crossed.

    "precise": with ``sub_flights=None`` a flight that its series' reach cut short lands at
    :data:`SHORT` (v); with a number, it continues for up to that many sub-flights
    (:func:`_continue`) and lands where the last one stopped."""
    h = dt
    n_rec = len(c.receptors)
    syn = receptors.ReceptorState(syn[:n_rec], syn[n_rec:]) if n_rec else None
    if refractory:
        r_a, v, w = serve_refractory(v, w, ref_left, dt, c)
        h = dt - r_a
        if n_rec:
            syn = receptors.evolve(syn, r_a, c.receptors)
    if method == "precise":
        f = series.flight(v, w, drive, h, ex0, c, syn, dt)
        if sub_flights:
            f = _continue(f, drive, h, dt, c, syn, sub_flights)
        short = ~f.crossed & (f.theta < 1.)
    else:
        f = runge_kutta.flight(v, w, drive, h, ex0, c, method, syn)
    v1, crossed, theta, w_cross = f.v, f.crossed, f.theta, f.w_cross
    # a flight that starts above the spike potential (v_reset >= thr, or a state set there) spikes at
    # its start; a neuron held for the whole step (h = 0) does not spike
    above = v > jnp.where(h > 0., c.v_spike, jnp.inf)
    crossed = jnp.where(above, above, crossed)
    if refractory and maybe_any(c.v_top > c.v_spike):  # held above the spike potential for the whole step:
        crossed = jnp.where(h > 0., crossed, False)  # no spike, and v leaves the flight at most at v_spike
        v1 = jnp.minimum(v1, c.v_spike)
    # (drive - drive: 0, or NaN for a NaN input, which then makes the neuron NaN rather than spike)
    theta, w_cross = jnp.where(above, drive - drive, theta), jnp.where(above, w, w_cross)
    w_r = w_cross + c.b
    if refractory:
        w_r = relax_w(w_r, jnp.minimum(c.refract_time, h * (1. - theta)), c)
    if method == "precise" and sub_flights is None:
        v1 = jnp.where(short & ~crossed, SHORT, v1)
    return Landing(v=v1, w=clamp_w(jnp.where(crossed, w_r, f.w)), crossed=crossed, theta=theta)


def _capacity(n):
    """Lanes of the compact buffer of sub-flights in a population of n."""
    return min(n, max(SUB_FLIGHT_LANES, n // SUB_FLIGHT_SHARE))


def _gather_coefficients(c, shape, idx):
    """The coefficients of the lanes ``idx`` (of the flattened ``shape``); a field known at trace
    time to be the same in every lane stays that scalar, so that the trace-time queries on it
    (:func:`~ngc_adex.numerics.ops.maybe_any`) decide as they do for the whole population."""
    def pick(x):
        if isinstance(x, (str, bool)):  # a receptor's static kind and type
            return x
        known = _static(x)
        if known is not None and (known.size == 1 or np.all(known == known.reshape(-1)[0])):
            return np.asarray(known.reshape(-1)[0], dtype=np.asarray(known).dtype)
        return jnp.broadcast_to(x, shape).reshape(-1)[idx]
    return jax.tree_util.tree_map(pick, c)


def _land_short_flights(landed, args, dt, c, refractory):
    """Lands again, with up to :data:`MAX_SUB_FLIGHTS` sub-flights, every lane whose flight
    landed at :data:`SHORT` (``landed``: :func:`~ngc_adex.numerics.devices.land`'s result); every
    other lane is kept as it is. Where none is short this is one reduction; else the short lanes
    are gathered into a compact buffer of :func:`_capacity` lanes, round after round."""
    shape = jnp.shape(args[0])
    args = tuple(jnp.broadcast_to(x, shape) for x in args)
    n = int(np.prod(shape))
    cap = _capacity(n)
    fly = partial(_fly, dt=dt, method="precise", refractory=refractory, sub_flights=MAX_SUB_FLIGHTS)
    flat = lambda x: x.reshape(-1)
    is_short = lambda landed: devices.landed_v(landed) < SHORT_BELOW

    def land_some(carry):
        landed, left = carry
        idx = jnp.nonzero(left, size=cap, fill_value=n)[0]
        # free slots fly the first short lane again (finite, discarded by the scatter)
        safe = jnp.where(idx < n, idx, idx[0])
        c_idx = _gather_coefficients(c, shape, safe)
        again = devices.land(partial(fly, c=c_idx), tuple(flat(x)[safe] for x in args), dt, c_idx)
        landed = jax.tree_util.tree_map(lambda old, new: flat(old).at[idx].set(new, mode="drop").reshape(shape),
                                        landed, again)
        return landed, left.at[idx].set(False, mode="drop")

    # up to cap lanes per round, each round only while some lane is left (one flight in the program)
    rounds = -(-n // cap)
    land_short = lambda carry: jax.lax.fori_loop(
        0, rounds, lambda _, cr: jax.lax.cond(jnp.any(cr[1]), land_some, lambda cr: cr, cr), carry)
    short = flat(is_short(landed))
    # (a comparison: a NaN lane is never short, and never hides a short one)
    return jax.lax.cond(jnp.any(short), land_short, lambda carry: carry, (landed, short))[0]


def advance(state: AdExState, j, t, dt, c: Coefficients, method: str, refractory: bool,
            track_times: bool = True, syn=None, weights=None, surrogate=None):
    """Advances every neuron from ``t - dt`` to ``t``.

    With receptors (``c.receptors``), ``syn`` is their
    :class:`~ngc_adex.numerics.receptors.ReceptorState` at ``t - dt`` and ``weights``
    (``(n_receptors, batch_size, n_units)``) the summed weights of the presynaptic spikes
    delivered in the step, which act at ``t - dt``, as an event at the step's start
    (NEST's convention for spikes delivered on the grid); "euler" instead takes
    ngc-learn's synapse update (decay, then the events, then the membrane with the new
    conductances).

    Args:
        state: :class:`~ngc_adex.numerics.model.AdExState` at time ``t - dt``

        j: input current, broadcastable to the state's shape

        t: time at the end of the step (ms)

        dt: step size (ms)

        c: :class:`~ngc_adex.numerics.model.Coefficients` of the population

        method: one of :data:`METHODS`

        refractory: whether any neuron has ``refract_time > 0`` (static)

        track_times: update ``t_spike`` with the interpolated crossing time
            (static; costs memory traffic that matters only for "euler")

        syn, weights: the receptors' state and the step's events (see above)

        surrogate: None, or the name of a surrogate estimator of the spike output's derivative
            (a key of :data:`~ngc_adex.numerics.surrogate.ESTIMATORS`; static)

    Returns:
        the :class:`~ngc_adex.numerics.model.AdExState` at time ``t`` (at most one spike per neuron
        and step); with receptors, the pair (AdExState, ReceptorState) at ``t``; with ``surrogate``,
        the estimator's derivative ds/dv of the step (1/mV, :mod:`~ngc_adex.numerics.surrogate`) last
    """
    check_current_shape(j, state.v.shape)
    dt = runtime_step(dt, state.v.dtype)
    if method == "euler":
        return euler.advance(state, j, t, dt, c, refractory, track_times, syn, weights, surrogate)
    if syn is not None:
        syn = receptors.deliver(syn, weights, c.receptors)
    ref_left = state.ref_left
    # the input once, for the flight and the step after a spike (a constant input leaves the time loop)
    drive = input_drive(j, c)
    # the exponential at the start in a loop of its own: at the head of the flight's chains of
    # dependent operations it would hold up the flight's loop
    args = (state.v, state.w, drive, ref_left, _exp_factor_at_start(state.v, ref_left, dt, c, refractory, method),
            *(() if syn is None else (*syn.g, *syn.h)))
    landed = devices.land(partial(_fly, dt=dt, c=c, method=method, refractory=refractory), args, dt, c)
    if method == "precise":
        landed = _land_short_flights(landed, args, dt, c, refractory)
    landing = Landing(*devices.unpack(landed, c))
    s = landing.crossed.astype(landing.v.dtype)
    r_a = clamped_share(ref_left, dt) if refractory else 0.
    t_cross = r_a + landing.theta * (dt - r_a)  # from the step start, where s = 1
    rest = dt - t_cross
    free_start = None if syn is None else \
        receptors.evolve(syn, dt - free_span(rest, dt, c, refractory), c.receptors)  # where after_spike starts
    v, w = after_spike(landing.v, landing.w, landing.crossed, drive, rest, dt, c, refractory, method, free_start)
    if refractory:
        ref_left = blend(s, jnp.maximum(c.refract_time - rest, 0.), jnp.maximum(ref_left - dt, 0.))
        v = jnp.where(ref_left > 0., c.v_reset, v)  # exactly v_reset while clamped
    tols, t_spike = spike_times(state, s, t, lambda: (t - dt) + t_cross, track_times)
    out = AdExState(v=v, w=w, ref_left=ref_left, s=s, tols=tols, t_spike=t_spike)
    if syn is not None:
        syn = receptors.evolve(syn, dt, c.receptors)
    if surrogate is None:
        return out if syn is None else (out, syn)
    # v before the reset, less v_spike: at the end of the step, or on the line from the flight's start
    # through the crossing (theta = 0: the flight started above v_spike, by v_start - v_spike)
    v_start = held_v(state.v, r_a, c) if refractory else state.v
    overshoot = jnp.where(landing.theta > 0., safe_ratio((1. - landing.theta) * (c.v_spike - v_start), landing.theta),
                          v_start - c.v_spike)
    x = jnp.where(landing.crossed, overshoot, landing.v - c.v_spike)
    return surrogate_outputs(out, syn, x, surrogate)
