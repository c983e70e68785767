"""ngc-adex: an exact, never-NaN adaptive exponential integrate-and-fire cell for ngc-learn."""
from .cell import AdExCell
from .dynamics import METHODS
from .params import PRESETS, from_physical, preset, preset_kwargs
from .modules import (DEFAULT_MODULES_PATH, AmbiguousModuleError, ModuleRegistry, ModulesFileError,
                      UnknownModuleError, load_modules)

__version__ = "0.1.0"

__all__ = ["AdExCell", "METHODS", "PRESETS", "from_physical", "preset", "preset_kwargs", "load_modules",
           "ModuleRegistry", "ModulesFileError", "UnknownModuleError", "AmbiguousModuleError",
           "DEFAULT_MODULES_PATH"]
