r"""The integrator "precise": a Taylor series in time of the exact solution.

Spike times agree with an exact solution to about 2e-4 ms at dt = 0.1 ms in
float32 (order 4), 6e-5 ms in float64 (order 6), at the cost of one
exponential and one logarithm per step; with synaptic receptors, whose
kinetics may be as fast as the step, the series runs to order 8 (float32) or
10 (float64).

Derivation. With ``D = v_sharpness``, ``vT = intrinsic_mem_thr``, ``v0`` the
potential at the start of the step and ``E0 = exp((v0 - vT)/D)``, change to::

    rho = exp(-(v - v0)/D)      y = (v - v0)/D = -ln rho      u = resist_m w / D
    tau_m drho/dt = -(E0 + rho (drive - v - resist_m w)/D),   drive = v_rest + resist_m j
    tau_w du/dt   = (a resist_m/D)(v - v_rest) - u

The exponential term becomes the constant ``E0``: at the spike (v -> inf)
``rho`` falls almost linearly to 0, where v's own series diverges. The Taylor
coefficients of rho, y and u over the step follow from products of series
(``rho y' = -rho'`` and the equations); v at the end of the step is
``v0 - D ln rho``, and the crossing is the root of ``rho(t) = exp(-(thr - v0)/D)``
(Newton's method from the tangent, on the series itself).

Reach. The series converges within the distance ``~tau_m/E0`` to the upswing's
singularity in complex time, and rho's within the time in which the input
moves v by ~D: a flight is expanded over at most :data:`SERIES_REACH` times the
first (which holds the crossing) and the time in which the input moves v by
:data:`INPUT_REACH` D. ``flight`` returns the fraction of h it covers (as
``theta`` where it does not cross); a flight cut short is continued by
sub-flights from where it stopped (:mod:`~ngc_adex.numerics.step`). v is summed
from rho (below) only where the part of the step the flight covers comes near
the singularity. w's logarithmic singularity at the spike is carried by ``psi(rho) = rho ln rho - rho + 1``, summed exactly
(``w = q + a_psi psi(rho)`` with ``q`` a fast-converging series). Away from
the singularity (the step shorter than :data:`POLE_NEAR` times that distance)
v is summed from y, whose series converges fast there whatever v's change.

Far below threshold. Below ``vT - U_DEPTH D``, and where the input moves v by
more than :data:`SERIES_SPAN` D and more than the exponential term does in a
step, unless it lifts v so far that the term would matter by the end of the step
(:data:`FAR_TOL`), that term (below ``D e^-U_DEPTH``, or small next to the input) is
dropped and :data:`D_FAR` replaces ``D`` as the scale of rho. With ``D = 0``
(plain integrate-and-fire) the crossing is that of ``v_spike`` by v; with
``D > 0`` a neuron that gets there in such a step (v is capped at ``v_spike``)
spikes at the start of the next.
"""
import jax.numpy as jnp

from . import devices, receptors
from .model import STATE_BOUND, Flight
from .ops import at_least, at_most, horner, maybe_any, quotient, surely_all, unit_newton, unit_ratio

#: order of the series per dtype: in float32 its spike-time error (~2e-4 ms at dt = 0.1 ms) is of the
#: order of the rounding's (~1e-4 ms); float64 gets the accuracy it pays for
SERIES_ORDER = {"float32": 4, "float64": 6}
#: the order with receptors: kinetics as fast as the step (NEST's default 0.2 ms at dt = 0.1 ms) enter
#: the series as exponentials of lambda h ~ 0.5, whose Taylor terms fall like (lambda h)^n / n!: order 8
#: brings them to float32 rounding (0.5^9/9! ~ 5e-9), order 10 near float64's
RECEPTOR_SERIES_ORDER = {"float32": 8, "float64": 10}
#: a step is expanded over at most this many times the distance to the singularity of the upswing
#: (the series diverges beyond it); the crossing lies within ~1.1 times that distance
SERIES_REACH = 2.
#: ... and over at most the time in which the input moves v by this many D (where the exponential term
#: is kept): rho's series in units of D converges like (that move)^k / k!
INPUT_REACH = 0.5
#: the exponential term is kept where, at the end of the input's move of v in the step, it would move v by
#: more than FAR_TOL v_sharpness in a step (dt/tau_m exp(x) > FAR_TOL)
FAR_TOL = 1e-4
#: the exponential term is dropped below intrinsic_mem_thr - U_DEPTH v_sharpness, where it is below
#: e^-20 v_sharpness ~ 2e-9 v_sharpness: under the float32 resolution of v
U_DEPTH = 20.
#: rho's series in units of D converges like (change of v / D)^k / k!: a step whose input moves v by
#: more than one D (and more than the exponential term does) drops that term, rather than the reach
#: cutting the step
SERIES_SPAN = 1.
#: the scale (mV) of rho where the exponential term is dropped: the linear dynamics have no singularity,
#: only the change of variables limits the series, and with a scale far above any change of v in a step
#: rho's terms fall like (change / D_FAR)^k; finite, so that rho stays a representable exponential
D_FAR = 1000.
#: where the step is at least this fraction of the distance to the singularity, v is summed from rho
#: (through the logarithm) and w carries the psi transform; below it, y's own series converges like
#: POLE_NEAR^k (0.05^5 ~ 3e-7: float32 rounding), and the logarithm would only add its rounding
POLE_NEAR = 0.05
#: floor of quantities that are divided by or logged where the result is discarded: far below any
#: meaningful value, far above float32's smallest normal (1.2e-38), so reciprocal and logarithm stay finite
TINY = 1e-30


def flight(v, w, drive, h, ex0, c, syn=None, h_bound=None) -> Flight:
    """The flight of "precise" over h (ms) from (v, w) under ``drive``
    (``ex0``: the exponential factor at v; ``syn``: the receptors' state there): the
    Taylor series of rho, y, u to order :data:`SERIES_ORDER`, summed for the state at
    the end of the step and solved for the crossing. ``theta`` is the fraction of h at
    the crossing where ``crossed``, elsewhere the fraction of h the flight covers (below 1
    where the reach cuts it short: v and w are then the state at that time). ``h_bound``:
    a scalar at least h (default h), where h differs per neuron.

    Receptors add ``J(t) - G(t) v`` to the forcing: sums of exponentials in time
    whose Taylor coefficients (:func:`~ngc_adex.numerics.receptors.taylor_totals`)
    enter the forcing's series, the product ``G v`` as a product of series."""
    order = (SERIES_ORDER if syn is None else RECEPTOR_SERIES_ORDER).get(jnp.result_type(v).name, 6)
    inv_k = [1. / (k + 1) for k in range(order)]
    x0 = (v - c.v_t) * c.inv_delta
    ha = h * c.inv_tau_m
    forcing = drive - v - c.resist_m * w
    if syn is not None:
        G0, J0 = receptors.totals(syn.g, c.receptors)
        forcing = forcing + (J0 - G0 * v)
    # with the exponential term above intrinsic_mem_thr - U_DEPTH D, unless the input moves v by more
    # than SERIES_SPAN D and than the exponential term does in the step (which is then negligible);
    # written as one product, which XLA:CPU fuses into the flight's loop
    near = at_least(x0 - c.x_far, 0.) * (SERIES_SPAN * c.delta_safe * jnp.maximum(ex0, 1.) - ha * jnp.abs(forcing)) > 0.
    # ... and where the input lifts v so far in the step that the term would no longer be negligible
    # at its end (ha exp(x) above FAR_TOL): the reach then cuts the step (INPUT_REACH). In logarithms,
    # with the scalar h_bound for h (keeping the term where h is shorter): no logarithm per lane
    x_end = x0 + at_least(ha * forcing * c.inv_delta, 0.)
    near = near | ((x0 > c.x_far) & (x_end + jnp.log(h if h_bound is None else h_bound) > c.x_keep))
    # the scale of rho: D near the spike, D_FAR (far above the step's change of v) where the dynamics are linear
    d_eff = jnp.where(near, c.delta_safe, c.d_far)
    inv_d = jnp.where(near, c.inv_delta, c.inv_d_far)
    e0 = jnp.where(near, ex0, 0.)  # E0, 0 where the exponential term is dropped
    # the series converges within the distance to the upswing's singularity, ~1/(e0/tau_m), and
    # rho's within the time in which the input moves v by ~D: expand over at most SERIES_REACH times
    # the shorter one (a crossing lies inside it), and over at most the time in which the input
    # moves v by INPUT_REACH D (rho's truncation error grows like that move^(order+1))
    r0 = ha * e0
    r_in = ha * jnp.abs(forcing) * inv_d
    r_all = jnp.maximum(r0 + r_in, (SERIES_REACH / INPUT_REACH) * r_in)
    if syn is not None:  # a conductance shortens the membrane's time constant to tau_m/(1 + G)
        r_all = r_all + ha * G0
    reach = jnp.where(r_all > SERIES_REACH, SERIES_REACH / jnp.where(r_all > SERIES_REACH, r_all, 1.), 1.)
    # a_psi psi(rho), psi = rho ln rho - rho + 1, carries u's log singularity at the spike
    # (a_psi = a resist_m tau_m/(tau_w E0)); it matters only within a few steps of it
    pole_near = r0 * reach > POLE_NEAR  # over the part of the step the flight covers
    a_psi = jnp.where(pole_near, quotient(c.a_r * (h * c.inv_tau_w), at_least(r0, TINY)), 0.)
    hr, hw = -(ha * reach), (h * reach) * c.inv_tau_w
    coupled = surely_all(c.couple_u == 1.)  # static: every input connected (resist_m > 0)
    r_d = c.resist_u * inv_d
    # dimensionless series: rho, y = (v - v0)/d_eff = -ln rho, u = (resist_m/d_eff) w and psi(rho)
    rho, y, y_d, u = [1.], [0.], [0.], [r_d * w]
    g = [forcing * inv_d]  # (drive - v - resist_m w)/d_eff, then g_k = -y_k - u_k
    psi = [0.]
    # The loop's speed is set by the chain of dependent operations from one order to the next, and
    # XLA keeps the order of a sum: every sum below adds its newest terms last. In
    # rho_(k+1) = hr/(k+1) sum_i rho_i g_(k-i), g_k = rho_k + t_k - u_k (y_k = -rho_k - t_k, rho y' = -rho'),
    # so rho_k enters through one multiply-add and the rest is known an order earlier.
    if syn is not None:
        Gs, Js = receptors.taylor_totals(syn, h * reach, order, c.receptors)
    t_k = 0.
    for k in range(order):
        h_k = hr * inv_k[k]
        if k == 0:
            rho.append(h_k * (e0 + g[0]))
        elif syn is not None:  # g_k carries the receptors' terms: the plain Cauchy product
            rho.append(h_k * sum(rho[i] * g[k - i] for i in range(k + 1)))
        else:
            known = sum(rho[i] * g[k - i] for i in range(k - 1, 0, -1)) + (t_k - u[k])
            rho.append(rho[k] * (h_k * (1. + g[0])) + h_k * known)
        t_k = inv_k[k] * sum(rho[i] * y_d[k + 1 - i] for i in range(k, 0, -1)) if k else 0.
        y.append(-rho[k + 1] - t_k)
        y_d.append((k + 1) * y[k + 1])
        u_src = c.a_r * (v - c.v_rest) * inv_d - u[0] if k == 0 else c.a_r * y[k] - u[k]
        u.append((hw * inv_k[k]) * u_src)
        g_next = -y[k + 1] - (u[k + 1] if coupled else c.couple_u * u[k + 1])
        if syn is not None:  # (J - G v)/d: v = v0 + d y
            g_next = g_next + ((Js[k + 1] - Gs[k + 1] * v) * inv_d - sum(Gs[i] * y[k + 1 - i] for i in range(k + 1)))
        g.append(g_next)
        # psi's first coefficient, -(y_1 + rho_1), vanishes (y_1 = -rho_1)
        psi.append(-(y[k + 1] + sum(rho[i] * y[k + 1 - i] for i in range(1, k + 1))) - rho[k + 1] if k else 0.)
    q = [0.] + [u[k] - a_psi * psi[k] for k in range(1, order + 1)]
    rho_sum = sum(rho)  # left to right: the newest term last
    # a NaN state or input never takes the logarithm's path (pole_near is false there)
    rho1 = at_least(rho_sum, TINY)
    log1 = devices.log(rho1)
    # v from rho near the spike's singularity (rho is smooth through the upswing), from y elsewhere
    # (there y converges fast whatever v's change, while rho, its exponential, needs a change << D)
    v1 = v + d_eff * jnp.where(pole_near, -log1, sum(y))
    # the crossing, where rho falls to rho_spike (without the exponential term: where v reaches v_spike)
    rho_spike = e0 * c.rho_spike  # 0 where the exponential term is dropped: no crossing
    f, f1, level = rho, rho_sum, rho_spike
    if maybe_any(c.smooth_crossing):  # lanes whose crossing the dropped exponential term may hold
        f = [jnp.where(near, 1., 0.)] + [jnp.where(near, rho[k], -y[k]) for k in range(1, order + 1)]
        f1, level = sum(f), jnp.where(near, rho_spike, (v - c.v_spike) * inv_d)
    crossed = f1 < level
    # Newton's method from the tangent's root (f falls almost linearly near the crossing)
    f_d = [k * f[k] for k in range(1, order + 1)]
    theta = unit_ratio(level - f[0], at_most(f[1], -TINY))
    theta = unit_newton(theta, horner(f, theta) - level, at_most(horner(f_d, theta), -TINY))
    # w at the crossing or at the end of the step (ln(rho_spike) = x0 - x_spike)
    rho_end, log_end = jnp.where(crossed, rho_spike, rho1), jnp.where(crossed, x0 - c.x_spike, log1)
    w1 = w + (d_eff * c.inv_resist_m) * (horner(q, jnp.where(crossed, theta, 1.))
                                         + a_psi * (rho_end * log_end - rho_end + 1.))
    # parameters far outside the series' reach (tau_m or tau_w much shorter than the step) can overflow
    # it: the neuron then keeps its state for the step (plus forcing - forcing: a NaN input stays NaN).
    # No crossing there, nor while clamped for the whole step (h = 0: a reset beyond the capped peak).
    # Selects on comparisons, no boolean arithmetic: XLA:CPU would pack the masks to bytes and back.
    finite = jnp.abs(v1 + w1) < jnp.inf
    keep = forcing - forcing
    v1, w1 = jnp.where(finite, v1, v + keep), jnp.where(finite, w1, w + keep)
    crossed = jnp.where(finite, f1, level) < jnp.where(h > 0., level, -jnp.inf)
    # w1 is w at the crossing where the neuron crossed, at the end of the flight elsewhere.
    # theta: the fraction of h at the crossing where the neuron crossed; elsewhere the fraction of h
    # the flight covered (its reach: 1, or less where the series' reach cut it short)
    return Flight(v=jnp.clip(v1, -STATE_BOUND, c.v_spike), w=w1, crossed=crossed,
                  theta=jnp.where(crossed, theta * reach, reach), w_cross=w1)
