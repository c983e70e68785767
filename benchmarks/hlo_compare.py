"""Is this checkout's step the same program as another's? Compiles ``numerics.advance`` of both for
every integrator x refractory x track_times x parameter set (uniform, mixed per lane, integrate-and-
fire) and compares the optimized HLO (metadata, source locations and instruction numbering
stripped) and the bits of a 3000-step run (every state array and the spike raster).

The check behind "bit-identical" for a change that should not touch the compiled step (a
restructure, a rename): an identical program is also an identical speed. Run it once more under
``JAX_ENABLE_X64=1`` for float64.

Usage::

    python benchmarks/hlo_compare.py OTHER_CHECKOUT
"""
import argparse
import hashlib
import re
import sys

import numpy as np
import jax
import jax.numpy as jnp

import ngc_adex.numerics as ours
from ab_step import _import_other
from ngc_adex import preset_kwargs
from ngc_adex.params import NAUD_PATTERNS


def _params(mod, kind):
    kws = [preset_kwargs(n) for n in NAUD_PATTERNS]
    p = {k: np.array([kw[k] for kw in kws], dtype=np.float64) for k in mod.AdExParams._fields}
    p["refract_time"] = np.full(len(kws), 2.)
    if kind == "uniform":
        p = {k: v[:1].repeat(len(kws)) for k, v in p.items()}
    elif kind == "mixed":  # smooth crossing, LIF, disconnected input, reset above thr, no refractoriness
        p["thr"][1] = p["intrinsic_mem_thr"][1] - 3.
        p["v_sharpness"][2] = 0.
        p["resist_m"][3] = 0.
        p["v_reset"][4] = p["thr"][4] + 5.
        p["refract_time"][5] = 0.
    else:
        p["v_sharpness"][:] = 0.
    return mod.AdExParams(**{k: v[None, :] for k, v in p.items()})


def _normalized_hlo(text):
    text = "\n".join(line for line in text.splitlines() if not re.match(r"^\d+ [\"{]", line))
    text = re.sub(r",? ?(metadata=\{[^}]*\}|stack_frame_id=\d+)", "", text)
    text = re.sub(r"^HloModule \S+", "HloModule", text, flags=re.M)
    return re.sub(r"%constant\.\d+", "%constant", text)


def fingerprint(mod, kind, method, refractory, track):
    """(normalized HLO of one step, sha1 of a 3000-step run)."""
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    c = mod.coefficients(_params(mod, kind), dtype)
    step = lambda s, j, t, dt: mod.advance(s, j, t, dt, c, method, refractory, track)
    z = jnp.zeros((1, len(NAUD_PATTERNS)), dtype)
    state = mod.AdExState(z - 65., z, z, z, z, z)
    j = jnp.linspace(0., 800., len(NAUD_PATTERNS), dtype=dtype)[None, :]
    dt = jnp.asarray(0.1, dtype)
    hlo = _normalized_hlo(jax.jit(step).lower(state, j, dt, dt).compile().as_text())
    run = lambda s: jax.lax.scan(lambda s, i: (step(s, j * (1 + 0.3 * jnp.sin(i * 0.01)), (i + 1) * dt, dt), s.s),
                                 s, jnp.arange(3000, dtype=dtype))
    final, spikes = jax.jit(run)(state)
    digest = hashlib.sha1()
    for a in (*final, spikes):
        digest.update(np.asarray(a).tobytes())
    return hlo, digest.hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("other", help="path to the other checkout (its ngc_adex/ package is compared)")
    args = ap.parse_args(argv)
    other = _import_other(args.other)
    n, hlo_diff, bit_diff = 0, [], []
    for kind in ("uniform", "mixed", "lif"):
        for method in ours.METHODS:
            for refractory in (False, True):
                for track in (True, False):
                    key = f"{kind}/{method}/refractory={refractory}/track_times={track}"
                    mine, theirs = (fingerprint(m, kind, method, refractory, track) for m in (ours, other))
                    n += 1
                    if mine[0] != theirs[0]:
                        hlo_diff.append(key)
                    if mine[1] != theirs[1]:
                        bit_diff.append(key)
    dtype = "float64" if jax.config.jax_enable_x64 else "float32"
    print(f"{n} configurations ({dtype}): compiled HLO differs in {len(hlo_diff)}, run bits in {len(bit_diff)}")
    for key in hlo_diff:
        print("  HLO differs:", key)
    for key in bit_diff:
        print("  bits differ:", key)
    return 1 if bit_diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
