"""Reading a component's saved compartments (``Context.save_to_json`` writes ``<name>.npz``)."""
import os

import numpy as np


def load_npz(component, directory, required=()):
    """The arrays saved for ``component`` in ``directory/<name>.npz``, with ``required`` present;
    a missing or unreadable file, or a missing array, raises an error naming the file."""
    path = os.path.join(directory, component.name + ".npz")
    kind = f"{type(component).__name__} '{component.name}'"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"saved state of {kind} not found: {path}")
    try:
        with np.load(path) as data:
            saved = {k: data[k] for k in data.files}
    except Exception as err:
        raise ValueError(f"saved state of {kind} is corrupted: {path} ({err})") from err
    missing = [k for k in required if k not in saved]
    if missing:
        raise ValueError(f"saved state {path} lacks compartment(s) {missing}")
    return saved
