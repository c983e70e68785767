"""ngc-adex: an exact, never-NaN adaptive exponential integrate-and-fire cell for ngc-learn."""
import sys

# Importing ngclearn makes ngcsimlib parse sys.argv for --config, and argparse would answer a
# -h/--help meant for the calling program (our CLI, a user's script) with ngcsimlib's help and exit.
_argv = sys.argv
sys.argv = [arg for arg in _argv if arg not in ("-h", "--help")]
try:
    import ngclearn  # noqa: F401,E402
finally:
    sys.argv = _argv
del _argv

from .cell import AdExCell
from .projection import PoissonDrive, SparseProjection
from .numerics import METHODS
from .params import NAUD_PATTERNS, PRESETS, from_physical, preset, preset_kwargs
from .receptors import RECEPTOR_PRESETS
from .modules import (DEFAULT_MODULES_PATH, AmbiguousModuleError, ModuleRegistry, ModulesFileError,
                      UnknownModuleError, load_modules)

__version__ = "0.1.0"

__all__ = ["AdExCell", "SparseProjection", "PoissonDrive", "METHODS", "NAUD_PATTERNS", "PRESETS", "RECEPTOR_PRESETS", "from_physical", "preset",
           "preset_kwargs",
           "load_modules", "ModuleRegistry", "ModulesFileError", "UnknownModuleError", "AmbiguousModuleError",
           "DEFAULT_MODULES_PATH"]
