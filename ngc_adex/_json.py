"""Plain JSON values from numpy / JAX data."""
import math

import numpy as np
import jax


def jsonable(x):
    """``x`` with arrays as (nested) lists and numpy scalars as Python numbers,
    recursively through dicts, lists and tuples; a float that is not finite
    becomes None (JSON has no NaN or inf). Floats keep their exact value, so
    what is saved loads back bit for bit."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (np.ndarray, jax.Array)):
        return jsonable(np.asarray(x).tolist())
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
