"""Event-driven sparse projections and per-target Poisson drive: thin ngc-learn components around
:mod:`ngc_adex.numerics.projection` and :mod:`ngc_adex.numerics.poisson`."""
import math
import numbers
from functools import partial

import numpy as np
import jax.numpy as jnp
from ngclearn import Compartment, compilable
from ngclearn.components.jaxComponent import JaxComponent

from ._checkpoint import load_npz
from .numerics import poisson as _poisson
from .numerics import projection as _proj

#: spikes per step the default ``max_spikes`` is sized for: a population at 20 Hz at dt = 0.1 ms
_DEFAULT_SPIKE_FRACTION = 0.002


def _int_arg(name, value, low=0, high=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low or \
            (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {rng}; got {value!r}")
    return int(value)


def _float_dtype():
    return jnp.zeros(()).dtype  # float32, or float64 under jax_enable_x64


class SparseProjection(JaxComponent):
    """
    An event-driven sparse synaptic projection with per-connection weights and integer
    delays: presynaptic spikes in, per-target sums of the weights of the arriving spikes
    out (wire ``outputs`` into a receptor port of an :class:`~ngc_adex.AdExCell`, e.g.
    ``proj.outputs >> cell.exc``, or into a current ``j``).

    | outputs_t[b, j] = sum_{c: post_c = j} weights_c * inputs_{t - delays_c}[b, pre_c]

    A connection of delay 0 delivers in the step its spike is read (meaningful when the
    projection's ``advance_state`` runs after the presynaptic cell's and before the
    postsynaptic one's in the process); delay d, d steps later. Delivery is event-driven:
    per step the spiking presynaptic neurons are compacted into a buffer of
    ``max_spikes`` entries and each one's out-list is added into a ring buffer of
    ``max_delay + 1`` slots; work per step is (spikes) x (largest out-degree), memory
    ``n_pre`` x (largest out-degree). Spikes beyond ``max_spikes`` in a step are found
    one by one: no spike is ever dropped. Any nonzero input is an event
    and scales its weights, as ``inputs @ W`` in a dense synapse.

    | --- Synapse Input Compartments: ---
    | inputs - presynaptic spikes (batch_size, n_pre)
    | --- Synapse State Compartments: ---
    | weights - per-connection weights, padded out-lists (n_pre, max_out); pads 0
    | targets - per-connection postsynaptic index (n_pre, max_out) int32; pads n_post
    | delays - per-connection delay in steps (n_pre, max_out) int32
    | buffer - ring buffer of pending sums (max_delay + 1, batch_size, n_post + 1)
    | head - slot of the current step in the ring buffer (int32)
    | key - JAX PRNG key
    | --- Synapse Output Compartments: ---
    | outputs - summed weights arriving in the step (batch_size, n_post)

    Connectivity (NEST's rules): ``rule="pairwise_bernoulli"`` (each pair with
    probability ``p``), ``"fixed_indegree"`` (each target ``indegree`` distinct sources),
    ``"fixed_outdegree"`` (each source ``outdegree`` distinct targets), ``"all_to_all"``;
    ``allow_autapses=False`` excludes pre index i -> post index i. Or explicit arrays
    ``pre``, ``post`` (with per-connection ``weight`` and ``delay`` arrays allowed).
    The connections are drawn once, from ``seed`` (or the ``key``): the same seed gives
    the same network.

    | References:
    | Brette, Romain, et al. "Simulation of networks of spiking neurons: a review of
    | tools and strategies." Journal of computational neuroscience 23.3 (2007): 349-398.
    |
    | Morrison, Abigail, et al. "Advancing the boundaries of high-connectivity network
    | simulation with distributed computing." Neural computation 17.8 (2005): 1776-1801.

    Args:
        name: the string name of this projection

        shape: (n_pre, n_post), the population sizes

        rule: connectivity rule, one of "pairwise_bernoulli", "fixed_indegree",
            "fixed_outdegree", "all_to_all" (Default: "pairwise_bernoulli"; ignored when
            ``pre``/``post`` are given)

        p: connection probability in [0, 1] ("pairwise_bernoulli")

        indegree: sources per target ("fixed_indegree"; at most n_pre, n_pre - 1 without autapses)

        outdegree: targets per source ("fixed_outdegree"; at most n_post, n_post - 1 without autapses)

        allow_autapses: whether pre index i may connect to post index i (Default: True;
            False for a recurrent projection of a population onto itself)

        weight: weight of every connection (Default: 1; nS into a conductance port, pA
            into a current), or with ``pre``/``post`` an array of one weight per connection

        delay: delay in steps, an integer >= 0 (Default: 0), or with ``pre``/``post`` an array
            of one delay per connection

        pre, post: explicit connections, integer arrays of equal length (Default: None)

        max_spikes: spikes compacted at once (Default: None = 0.2% of n_pre, at least 4:
            a population firing at 20 Hz at dt = 0.1 ms); the spikes beyond them in a step
            are found one by one (a binary search each)

        batch_size: batch dimension (Default: 1)

        seed: integer seed of the connectivity (Default: None = from ``key``)

        key: PRNG key (Default: None, a time-based key)
    """

    def __init__(self, name, shape, rule="pairwise_bernoulli", p=None, indegree=None, outdegree=None,
                 allow_autapses=True, weight=1., delay=0, pre=None, post=None, max_spikes=None, batch_size=1,
                 seed=None, key=None, saved_layout=None, **kwargs):
        if kwargs:
            raise TypeError(f"SparseProjection got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        super().__init__(name, key)
        if not isinstance(shape, (tuple, list)) or len(shape) != 2:
            raise ValueError(f"shape must be (n_pre, n_post); got {shape!r}")
        self.n_pre = _int_arg("shape[0] (n_pre)", shape[0], 1)
        self.n_post = _int_arg("shape[1] (n_post)", shape[1], 1)
        self.shape = (self.n_pre, self.n_post)
        self.batch_size = _int_arg("batch_size", batch_size, 1)
        self.max_spikes = (max(4, math.ceil(_DEFAULT_SPIKE_FRACTION * self.n_pre)) if max_spikes is None
                           else _int_arg("max_spikes", max_spikes, 1))
        self.allow_autapses = bool(allow_autapses)
        self.seed = seed_value = (_proj.seed_from_key(self.key.get()) if seed is None
                                  else _int_arg("seed", seed, 0))
        self._rule_kwargs = None
        dtype = np.dtype(_float_dtype())
        if saved_layout is not None:  # rebuilt by Context.load: the arrays come from the npz
            max_out, max_delay = (_int_arg(f"saved_layout[{i}]", v, 0) for i, v in enumerate(saved_layout))
            self.rule = None
            targets = np.full((self.n_pre, max(1, max_out)), self.n_post, np.int32)
            weights = np.zeros(targets.shape, dtype)
            delays = np.full(targets.shape, max_delay, np.int32)
        else:
            if pre is not None or post is not None:
                self.rule = None
                pre, post = self._explicit(pre, post)
            else:
                self.rule = rule
                pre, post = self._from_rule(rule, p, indegree, outdegree, seed_value)
                if not isinstance(weight, numbers.Real) or not isinstance(delay, numbers.Integral):
                    raise ValueError("with a connectivity rule, weight must be a number and delay an integer; "
                                     "per-connection arrays need explicit pre/post")
            weight = self._check_weight(weight, len(pre))
            delay = self._check_delay(delay, len(pre))
            targets, weights, delays = _proj.ell_layout(pre, post, weight, delay, self.n_pre, self.n_post, dtype)
        self.n_slots = int(delays.max(initial=0)) + 1
        self._weight_arg, self._delay_arg = weight, delay
        self._set_uniform_delay(delays, targets)

        self.inputs = Compartment(jnp.zeros((self.batch_size, self.n_pre), dtype), display_name="Presynaptic spikes")
        self.outputs = Compartment(jnp.zeros((self.batch_size, self.n_post), dtype),
                                   display_name="Summed weights arriving in the step")
        self.weights = Compartment(jnp.asarray(weights), display_name="Synaptic weights (padded out-lists)")
        self.targets = Compartment(jnp.asarray(targets), display_name="Postsynaptic targets (padded out-lists)")
        self.delays = Compartment(jnp.asarray(delays), display_name="Synaptic delays (padded out-lists)",
                                  units="steps")
        self.buffer = Compartment(self._empty_buffer(), display_name="Ring buffer of pending sums")
        self.head = Compartment(jnp.zeros((), jnp.int32), display_name="Ring buffer head")

    # ------------------------------------------------------------------ construction helpers
    def _from_rule(self, rule, p, indegree, outdegree, seed):
        if rule not in _proj.RULES:
            raise ValueError(f"rule must be one of {_proj.RULES} (or give pre and post); got {rule!r}")
        kw = {}
        if rule == "pairwise_bernoulli":
            if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0. <= float(p) <= 1.:
                raise ValueError(f"p must be a probability in [0, 1] for rule 'pairwise_bernoulli'; got {p!r}")
            kw["p"] = float(p)
        elif rule == "fixed_indegree":
            kw["indegree"] = _int_arg("indegree", indegree, 0, self.n_pre - self._self_excluded(self.n_post,
                                                                                             self.n_pre))
        elif rule == "fixed_outdegree":
            kw["outdegree"] = _int_arg("outdegree", outdegree, 0, self.n_post - self._self_excluded(self.n_pre,
                                                                                                self.n_post))
        self._rule_kwargs = kw
        return _proj.connect(rule, self.n_pre, self.n_post, seed, allow_autapses=self.allow_autapses, **kw)

    def _self_excluded(self, rows, candidates):
        """1 when every row has an own index among the candidates and autapses are excluded."""
        return int(not self.allow_autapses and rows <= candidates)

    def _explicit(self, pre, post):
        arrays = []
        for label, arr, n in (("pre", pre, self.n_pre), ("post", post, self.n_post)):
            a = np.asarray(arr if arr is not None else [])
            if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
                raise ValueError(f"{label} must be a 1-D integer array of neuron indices; got shape {a.shape}, "
                                 f"dtype {a.dtype}")
            if a.size and (a.min() < 0 or a.max() >= n):
                raise ValueError(f"{label} indices must lie in [0, {n - 1}]; got [{a.min()}, {a.max()}]")
            arrays.append(a.astype(np.int64))
        if arrays[0].shape != arrays[1].shape:
            raise ValueError(f"pre and post must have the same length; got {arrays[0].size} and {arrays[1].size}")
        return arrays

    @staticmethod
    def _check_weight(weight, n):
        w = np.asarray(weight)
        if w.dtype.kind not in "iuf" or w.ndim > 1 or (w.ndim == 1 and w.shape[0] != n):
            raise ValueError(f"weight must be a number or an array of {n} numbers (one per connection); "
                             f"got shape {w.shape}, dtype {w.dtype}")
        if not np.all(np.isfinite(w)):
            raise ValueError("weight must be finite")
        return w.astype(np.float64)

    @staticmethod
    def _check_delay(delay, n):
        d = np.asarray(delay)
        if d.ndim > 1 or (d.ndim == 1 and d.shape[0] != n) or (d.size and d.dtype.kind not in "iu") \
                or isinstance(delay, bool) or (d.size and d.min() < 0):
            raise ValueError(f"delay must be an integer >= 0 (steps) or an array of {n} such integers (one per "
                             f"connection); got {delay!r}" if d.size < 10 else
                             f"delay must be integers >= 0 (steps), one per connection ({n})")
        return d.astype(np.int64)

    def _set_uniform_delay(self, delays, targets):
        real = np.asarray(delays)[np.asarray(targets) < self.n_post]
        self._uniform_delay = int(real[0]) if real.size and np.all(real == real[0]) else None

    def _empty_buffer(self):
        return jnp.zeros((self.n_slots, self.batch_size, self.n_post + 1), _float_dtype())

    # ------------------------------------------------------------------ properties
    @property
    def n_connections(self):
        """Number of connections."""
        return int(np.sum(np.asarray(self.targets.get()) < self.n_post))

    @property
    def max_delay(self):
        """Largest delay (steps)."""
        return self.n_slots - 1

    def connections(self):
        """The connections as numpy arrays ``(pre, post, weight, delay)``, sorted by pre."""
        targets = np.asarray(self.targets.get())
        rows, cols = np.nonzero(targets < self.n_post)
        return (rows, targets[rows, cols], np.asarray(self.weights.get())[rows, cols],
                np.asarray(self.delays.get())[rows, cols])

    @property
    def step_fn(self):
        """The pure step, ``step_fn(buffer, head, inputs, targets, weights, delays)`` ->
        ``(outputs, buffer, head)`` (see :func:`ngc_adex.numerics.projection.step`)."""
        return partial(_proj.step, max_spikes=self.max_spikes, uniform_delay=self._uniform_delay)

    # ------------------------------------------------------------------ compiled
    @compilable
    def advance_state(self):
        outputs, buffer, head = self.step_fn(self.buffer.get(), self.head.get(), self.inputs.get(),
                                             self.targets.get(), self.weights.get(), self.delays.get())
        self.outputs.set(outputs)
        self.buffer.set(buffer)
        self.head.set(head)

    @compilable
    def reset(self):
        if not self.inputs.targeted:
            self.inputs.set(jnp.zeros((self.batch_size, self.n_pre), _float_dtype()))
        self.outputs.set(jnp.zeros((self.batch_size, self.n_post), _float_dtype()))
        self.buffer.set(self._empty_buffer())
        self.head.set(jnp.zeros((), jnp.int32))

    # ------------------------------------------------------------------ save / load
    def to_json(self):
        """Constructor arguments for ``Context.save_to_json``: a rule with its seed (the
        connections are drawn again, then overwritten by the saved arrays), or for explicit
        connections the layout's size (the arrays come from the npz)."""
        kw = {"allow_autapses": self.allow_autapses, "max_spikes": self.max_spikes, "batch_size": self.batch_size,
              "seed": self.seed}
        if self.rule is not None:
            kw.update(rule=self.rule, weight=float(self._weight_arg), delay=int(self._delay_arg), **self._rule_kwargs)
        else:
            kw.update(rule=None, saved_layout=[int(self.targets.get().shape[1]), self.max_delay])
        self._args = (self.name, list(self.shape))
        self._kwargs = kw
        return super().to_json()

    def load(self, directory):
        """Restores the saved compartments from ``directory/<name>.npz`` (a missing file or
        array, or one of another shape, raises an error naming the file)."""
        required = ("weights", "targets", "delays", "buffer", "head")
        saved = load_npz(self, directory, required)
        for comp_name, comp in self.compartments:
            if comp_name not in saved or comp.targeted:
                continue
            value = saved[comp_name]
            if comp_name in required and value.shape != np.shape(comp.get()):
                raise ValueError(f"saved state of '{self.name}': compartment '{comp_name}' has shape {value.shape}, "
                                 f"expected {np.shape(comp.get())}")
            comp.set(jnp.asarray(value))
        self._set_uniform_delay(saved["delays"], saved["targets"])

    @classmethod
    def help(cls):  ## component help function
        properties = {
            "synapse_type": "SparseProjection - event-driven sparse projection with per-connection weights and "
                            "integer delays (ring buffer); work per step (spikes) x (out-degree)"
        }
        compartment_props = {
            "inputs": {"inputs": "Presynaptic spikes (batch_size, n_pre)"},
            "states": {"weights": "Per-connection weights, padded out-lists (n_pre, max_out)",
                       "targets": "Per-connection postsynaptic indices (n_pre, max_out); pads n_post",
                       "delays": "Per-connection delays in steps (n_pre, max_out)",
                       "buffer": "Ring buffer of pending sums (max_delay + 1, batch_size, n_post + 1)",
                       "head": "Ring buffer slot of the current step",
                       "key": "JAX PRNG key"},
            "outputs": {"outputs": "Summed weights arriving in the step (batch_size, n_post)"},
        }
        hyperparams = {
            "shape": "(n_pre, n_post)",
            "rule": "pairwise_bernoulli, fixed_indegree, fixed_outdegree or all_to_all (or explicit pre/post)",
            "p": "Connection probability (pairwise_bernoulli)",
            "indegree": "Sources per target (fixed_indegree)",
            "outdegree": "Targets per source (fixed_outdegree)",
            "allow_autapses": "Whether pre index i may connect to post index i",
            "weight": "Connection weight (number, or one per explicit connection)",
            "delay": "Connection delay in steps (integer >= 0, or one per explicit connection)",
            "pre": "Explicit presynaptic indices", "post": "Explicit postsynaptic indices",
            "max_spikes": "Spikes compacted at once (beyond them: found one by one)",
            "batch_size": "Batch size dimension of this component",
            "seed": "Integer seed of the connectivity",
        }
        return {cls.__name__: properties, "compartments": compartment_props,
                "dynamics": "outputs_t[j] = sum_{c: post_c = j} weights_c * inputs_{t - delays_c}[pre_c]",
                "hyperparameters": hyperparams}


class PoissonDrive(JaxComponent):
    """
    Per-target Poisson drive: target i receives the events of ``n_sources[i]``
    independent Poisson sources of rate ``rate`` each (as NEST's ``poisson_generator``
    connected to each target), i.e. a count ``N_i ~ Poisson(n_sources[i] * rate * dt)``
    per step, and outputs ``weight * N_i`` (wire ``outputs`` into a receptor port, e.g.
    ``drive.outputs >> cell.exc``).

    | outputs_t[b, i] = weight_i * N_t[b, i],  N_t[b, i] ~ Poisson(n_sources_i * rate * dt / 1000)

    Sampling (``method``): "split" (default) draws the step's total over all targets,
    ``M ~ Poisson(sum_i lam_i)``, and assigns each event to target i with probability
    ``n_sources[i] / sum n_sources`` (one hashed random integer per event, delivered in rounds
    of ``max_events``): independent Poisson counts per target (Poisson splitting; each
    target's share exact to a relative ``sum n_sources / 2^32``), at a cost proportional to
    the events, not the targets. "inverse_cdf" draws one uniform per
    target and inverts the Poisson distribution function
    (:func:`ngc_adex.numerics.poisson.poisson_counts`).

    Against ngc-learn's ``PoissonCell`` (N_ext sources) + a projection: each target's
    count per step is then a sum of Bernoulli(rate dt) spikes of its K_i sources,
    Binomial(K_i, rate dt), whose variance differs from Poisson(K_i rate dt) by a factor
    ``1 - rate dt`` (2.5e-4 at 2.5 Hz, dt = 0.1 ms): the two are equivalent in each
    target's marginal input when ``rate * dt << 1`` and ``n_sources`` are the in-degrees
    (for a pairwise-Bernoulli projection with probability p, draw
    ``n_sources ~ Binomial(N_ext, p)``: :meth:`binomial_sources`). They differ in
    correlations between targets: with a shared population, two targets share on
    average p^2 N_ext sources (input correlation coefficient ~p), here none. Use the
    shared population when input correlations matter, this drive when they do not.

    | --- Cell State Compartments: ---
    | key - JAX PRNG key
    | sources - n_sources per target (n_units,) int32
    | source_ends - their cumulative sums (n_units,) int32
    | --- Cell Output Compartments: ---
    | outputs - weight x events arriving in the step (batch_size, n_units)

    | References:
    | Brunel, Nicolas. "Dynamics of sparsely connected networks of excitatory and
    | inhibitory spiking neurons." Journal of computational neuroscience 8.3 (2000): 183-208.

    Args:
        name: the string name of this drive

        n_units: number of targets

        rate: rate of each source (Default: 10 Hz)

        n_sources: sources per target, an integer >= 0 or a list of one per target (Default: 1)

        weight: weight of one event (Default: 1; nS into a conductance port)

        method: "split" or "inverse_cdf" (Default: "split")

        max_events: events assigned per round of "split" (Default: 1024)

        batch_size: batch dimension (Default: 1)

        key: PRNG key (Default: None, a time-based key)
    """

    METHODS = ("split", "inverse_cdf")

    def __init__(self, name, n_units, rate=10., n_sources=1, weight=1., method="split", max_events=1024,
                 batch_size=1, key=None, **kwargs):
        if kwargs:
            raise TypeError(f"PoissonDrive got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        super().__init__(name, key)
        self.n_units = _int_arg("n_units", n_units, 1)
        self.batch_size = _int_arg("batch_size", batch_size, 1)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not (0. <= rate < math.inf):
            raise ValueError(f"rate must be a finite number >= 0 (Hz); got {rate!r}")
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight):
            raise ValueError(f"weight must be a finite number; got {weight!r}")
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}; got {method!r}")
        self.rate, self.weight, self.method = float(rate), float(weight), method
        self.max_events = _int_arg("max_events", max_events, 1)
        k = np.asarray(n_sources)
        if isinstance(n_sources, bool) or k.dtype.kind not in "iu" or k.ndim > 1 \
                or (k.ndim == 1 and k.shape[0] != self.n_units) or (k.size and k.min() < 0):
            raise ValueError(f"n_sources must be an integer >= 0 or a list of {self.n_units} such integers "
                             f"(one per target); got {n_sources if k.size < 10 else f'shape {k.shape}'!r}")
        k = np.broadcast_to(k.astype(np.int64), (self.n_units,))
        if k.sum() >= 2 ** 31:
            raise ValueError(f"n_sources sum to {k.sum()}; at most 2^31 - 1 sources in all")
        self._n_sources_arg = n_sources if k.ndim == 0 or isinstance(n_sources, numbers.Integral) else k.tolist()
        self.total_sources = int(k.sum())
        dtype = _float_dtype()
        self._uniform = bool(np.all(k == k[0]))
        self.sources = Compartment(jnp.asarray(k, jnp.int32), display_name="Sources per target")
        self.source_ends = Compartment(jnp.asarray(np.cumsum(k), jnp.int32), display_name="Cumulative sources")
        self.outputs = Compartment(jnp.zeros((self.batch_size, self.n_units), dtype), display_name="Drive")

    @staticmethod
    def binomial_sources(n_targets, n_ext, p, seed=0):
        """Per-target source counts ``K_i ~ Binomial(n_ext, p)`` (a list): the in-degrees a
        pairwise-Bernoulli projection of probability ``p`` from ``n_ext`` sources gives."""
        return _poisson.binomial_sources(seed, n_targets, n_ext, p).tolist()

    @property
    def step_fn(self):
        """The pure step, ``step_fn(key, sources, ends, dt)`` -> ``(outputs, key)``
        (:func:`ngc_adex.numerics.poisson.drive`)."""
        return partial(_poisson.drive, rate=self.rate, weight=self.weight, batch=self.batch_size,
                       method=self.method, max_events=self.max_events, uniform=self._uniform)

    @compilable
    def advance_state(self, dt):
        outputs, key = self.step_fn(self.key.get(), self.sources.get(), self.source_ends.get(), dt)
        self.outputs.set(outputs)
        self.key.set(key)

    @compilable
    def reset(self):
        self.outputs.set(jnp.zeros((self.batch_size, self.n_units), _float_dtype()))

    def to_json(self):
        """Constructor arguments for ``Context.save_to_json`` (the key comes from the npz)."""
        self._args = (self.name, self.n_units)
        self._kwargs = {"rate": self.rate, "n_sources": self._n_sources_arg, "weight": self.weight,
                        "method": self.method, "max_events": self.max_events, "batch_size": self.batch_size}
        return super().to_json()

    @classmethod
    def help(cls):  ## component help function
        properties = {"cell_type": "PoissonDrive - per-target Poisson input: the summed events of n_sources "
                                   "independent Poisson sources per target"}
        compartment_props = {
            "inputs": {},
            "states": {"key": "JAX PRNG key", "sources": "Sources per target"},
            "outputs": {"outputs": "weight x events arriving in the step"},
        }
        hyperparams = {"n_units": "Number of targets", "rate": "Rate of each source (Hz)",
                       "n_sources": "Sources per target", "weight": "Weight of one event",
                       "method": "split or inverse_cdf", "max_events": "Events assigned per round (split)",
                       "batch_size": "Batch size dimension of this component"}
        return {cls.__name__: properties, "compartments": compartment_props,
                "dynamics": "outputs = weight * N, N ~ Poisson(n_sources * rate * dt / 1000) per target and step",
                "hyperparameters": hyperparams}
