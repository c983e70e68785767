"""
Loader for ngc-learn's legacy ``modules.json`` format.

Older ngc-learn / ngcsimlib releases read a ``json_files/modules.json`` file
at import time and made every class listed there findable by a short name.
ngcsimlib 3.1.1 no longer reads that file; this module restores the lookup as
an explicit, side-effect free call:

.. code-block:: python

    from ngc_adex.modules import load_modules

    registry = load_modules()            # json_files/modules.json (or config)
    AdEx = registry.resolve("adex")      # by keyword
    LIF = registry["ngclearn.components.LIFCell"]   # by full path

The file is a JSON list of module entries::

    [
      {"absolute_path": "ngc_adex",
       "attributes": [{"name": "AdExCell", "keywords": ["adex", "adex_cell"]}]}
    ]

Every listed attribute can be found by its bare name (``AdExCell``), by its
full path (``ngc_adex.AdExCell``) and by each of its keywords (``adex``).
Lookups are exact and case-sensitive. Full paths and keywords must be unique
in a file; a bare name shared by two different objects is ambiguous and can
only be used through the full path or a keyword.
"""

import difflib
import importlib
import json
import os

from ngcsimlib import get_config

__all__ = [
    "DEFAULT_MODULES_PATH",
    "ModulesFileError",
    "UnknownModuleError",
    "AmbiguousModuleError",
    "ModuleRegistry",
    "load_modules",
]

#: where ``load_modules`` looks when neither a path nor a config section is given
#: (relative to the current working directory, as ngc-learn always did)
DEFAULT_MODULES_PATH = os.path.join("json_files", "modules.json")


class ModulesFileError(ValueError):
    """
    Raised by ``load_modules`` when a modules file cannot be used: it is
    missing or unreadable, is not valid JSON, does not have the expected
    structure, lists a module that cannot be imported or an attribute that
    a module lacks, or repeats a full path or keyword.

    The offending file is always named in the message and kept as ``path``.
    """

    def __init__(self, path, message):
        self.path = None if path is None else os.fspath(path)
        if self.path is not None:
            message = f"{message} (modules file: '{self.path}')"
        super().__init__(message)


class UnknownModuleError(KeyError):
    """
    Raised by ``ModuleRegistry.resolve`` for a name that is neither a bare
    name, a full path, nor a keyword of any loaded entry.
    """

    def __str__(self):  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class AmbiguousModuleError(LookupError):
    """
    Raised by ``ModuleRegistry.resolve`` for a bare name that is shared by
    two or more different objects in the modules file.
    """


class _Entry:
    """One resolved attribute of a modules file (internal record)."""

    __slots__ = ("module", "name", "keywords", "obj")

    def __init__(self, module, name, keywords, obj):
        self.module = module
        self.name = name
        self.keywords = keywords
        self.obj = obj

    @property
    def full_path(self):
        return f"{self.module}.{self.name}"


class ModuleRegistry:
    """
    A read-only lookup table built from a legacy ngc-learn ``modules.json``
    file (see ``load_modules``).

    Names are matched exactly (case-sensitive), in this order: full path
    (``ngc_adex.AdExCell``), keyword (``adex``), bare name (``AdExCell``).

    Args:
        entries: list of internal entry records (built by ``load_modules``)

        path: the file the entries were read from (used in messages only)
    """

    def __init__(self, entries=(), path=None):
        self.path = None if path is None else str(path)
        self._entries = list(entries)
        self._by_full = {}
        self._by_keyword = {}
        self._by_bare = {}
        for entry in self._entries:
            self._by_full[entry.full_path] = entry
            for kw in entry.keywords:
                self._by_keyword[kw] = entry
            self._by_bare.setdefault(entry.name, []).append(entry)

    def _bare_candidates(self, name):
        """Distinct objects registered under bare name ``name`` (with paths)."""
        distinct = []
        for entry in self._by_bare.get(name, []):
            if all(entry.obj is not other.obj for other in distinct):
                distinct.append(entry)
        return distinct

    def resolve(self, name):
        """
        Finds the object registered under ``name``.

        Args:
            name: a full path (``"ngc_adex.AdExCell"``), a keyword
                (``"adex"``) or an unambiguous bare name (``"AdExCell"``);
                matching is exact and case-sensitive

        Returns:
            the class (or other attribute) listed in the modules file
        """
        if not isinstance(name, str):
            raise TypeError(
                f"module names are strings, got {type(name).__name__}: {name!r}")
        entry = self._by_full.get(name)
        if entry is None:
            entry = self._by_keyword.get(name)
        if entry is not None:
            return entry.obj

        candidates = self._bare_candidates(name)
        if len(candidates) == 1:
            return candidates[0].obj
        if len(candidates) > 1:
            options = []
            for cand in self._by_bare[name]:
                kws = ", ".join(repr(k) for k in cand.keywords)
                options.append(f"'{cand.full_path}'"
                               + (f" (keywords: {kws})" if kws else ""))
            raise AmbiguousModuleError(
                f"'{name}' is ambiguous in modules file '{self.path}': it names "
                f"{len(candidates)} different objects: {'; '.join(options)}. "
                f"Use the full path or a keyword instead.")

        known = self.names() + self.ambiguous_names()
        hint = [k for k in known if k.lower() == name.lower()]
        for k in difflib.get_close_matches(name, known, n=3, cutoff=0.6):
            if k not in hint:
                hint.append(k)
        message = f"'{name}' is not listed in modules file '{self.path}'"
        if hint:
            message += (" (names are case-sensitive; did you mean "
                        + ", ".join(repr(h) for h in hint) + "?)")
        raise UnknownModuleError(message)

    def __getitem__(self, name):
        return self.resolve(name)

    def __contains__(self, name):
        """True when ``resolve(name)`` would succeed (ambiguous names are not)."""
        if not isinstance(name, str):
            return False
        if name in self._by_full or name in self._by_keyword:
            return True
        return len(self._bare_candidates(name)) == 1

    def names(self):
        """
        Lists every name that ``resolve`` accepts.

        Returns:
            sorted list of full paths, keywords and unambiguous bare names
        """
        found = set(self._by_full) | set(self._by_keyword)
        found.update(n for n in self._by_bare if len(self._bare_candidates(n)) == 1)
        return sorted(found)

    def ambiguous_names(self):
        """
        Lists the bare names that are shared by different objects.

        Returns:
            sorted list of bare names that ``resolve`` refuses as ambiguous
        """
        return sorted(n for n in self._by_bare if len(self._bare_candidates(n)) > 1)

    def full_paths(self):
        """
        Lists the full paths of every entry, in file order.

        Returns:
            list of strings ``"absolute_path.name"``
        """
        return [entry.full_path for entry in self._entries]

    def __len__(self):
        return len(self._entries)

    def __repr__(self):
        return f"ModuleRegistry(path={self.path!r}, entries={len(self._entries)})"


def _config_modules_path():
    """
    Reads ``module_path`` from the ``modules`` section of the ngcsimlib
    configuration (``json_files/config.json`` by default), if any.

    Returns:
        the configured path, or None when no usable section is present
    """
    section = get_config("modules")
    if section is None:
        return None
    if isinstance(section, (str, os.PathLike)):
        return section
    if isinstance(section, dict):
        value = section.get("module_path")
        if value is None or isinstance(value, (str, os.PathLike)):
            return value
        raise ModulesFileError(
            None, f"the 'modules' section of the ngcsimlib config has a "
                  f"'module_path' of type {type(value).__name__}; expected a string")
    raise ModulesFileError(
        None, f"the 'modules' section of the ngcsimlib config must be an object "
              f"like {{\"module_path\": \"json_files/modules.json\"}}, "
              f"got {type(section).__name__}")


def _require(path, cond, message):
    if not cond:
        raise ModulesFileError(path, message)


def _parse(path, data):
    """Validates the JSON structure and returns (module, name, keywords) triples."""
    _require(path, isinstance(data, list),
             f"expected a JSON list of module entries at the top level, "
             f"got {type(data).__name__}")
    triples = []
    for i, entry in enumerate(data):
        where = f"entry {i}"
        _require(path, isinstance(entry, dict),
                 f"{where}: expected an object with 'absolute_path' and "
                 f"'attributes', got {type(entry).__name__}")
        for key in ("absolute_path", "attributes"):
            _require(path, key in entry, f"{where}: missing key '{key}'")
        module = entry["absolute_path"]
        _require(path, isinstance(module, str) and module.strip() != "",
                 f"{where}: 'absolute_path' must be a non-empty string, got {module!r}")
        where = f"entry {i} ('{module}')"
        attributes = entry["attributes"]
        _require(path, isinstance(attributes, list),
                 f"{where}: 'attributes' must be a list, got {type(attributes).__name__}")
        for j, attr in enumerate(attributes):
            awhere = f"{where}, attribute {j}"
            _require(path, isinstance(attr, dict),
                     f"{awhere}: expected an object with 'name' (and optional "
                     f"'keywords'), got {type(attr).__name__}")
            _require(path, "name" in attr, f"{awhere}: missing key 'name'")
            name = attr["name"]
            _require(path, isinstance(name, str) and name.strip() != "",
                     f"{awhere}: 'name' must be a non-empty string, got {name!r}")
            keywords = attr.get("keywords", [])
            if keywords is None:
                keywords = []
            _require(path, isinstance(keywords, list),
                     f"{awhere} ('{name}'): 'keywords' must be a list of strings, "
                     f"got {type(keywords).__name__}")
            for kw in keywords:
                _require(path, isinstance(kw, str) and kw != "",
                         f"{awhere} ('{name}'): every keyword must be a non-empty "
                         f"string, got {kw!r}")
            unique = list(dict.fromkeys(keywords))  # drop repeats within one attribute
            triples.append((module, name, unique))
    return triples


def _import(path, module_name, cache):
    if module_name in cache:
        return cache[module_name]
    try:
        mod = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or anything the module raises
        raise ModulesFileError(
            path, f"cannot import module '{module_name}': "
                  f"{type(exc).__name__}: {exc}") from exc
    cache[module_name] = mod
    return mod


def load_modules(path=None):
    """
    Loads a legacy ngc-learn ``modules.json`` file, imports every module it
    lists and checks every attribute, and returns a registry to look them up.

    The file is chosen as follows: ``path`` when given; otherwise the
    ``module_path`` of the ``modules`` section of the ngcsimlib config
    (``{"modules": {"module_path": "json_files/modules.json"}}`` in
    ``json_files/config.json``); otherwise ``json_files/modules.json``.
    Relative paths are relative to the current working directory.

    Args:
        path: path to a modules file (str or path-like); None to use the
            config section or the default location

    Returns:
        a ``ModuleRegistry`` for the file's entries

    Raises:
        ModulesFileError: the file is missing, unreadable, not JSON, has the
            wrong structure, lists a module that cannot be imported or an
            attribute a module lacks, or repeats a full path or keyword
    """
    origin = "given"
    if path is None:
        path = _config_modules_path()
        origin = "configured in the 'modules' section of the ngcsimlib config"
        if path is None:
            path = DEFAULT_MODULES_PATH
            origin = "default"
    path = os.fspath(path)

    if not os.path.isfile(path):
        reason = "is a directory" if os.path.isdir(path) else "does not exist"
        raise ModulesFileError(
            path, f"modules file {reason} ({origin} path, resolved to "
                  f"'{os.path.abspath(path)}')")
    try:
        with open(path, "r", encoding="utf-8") as fp:
            data = json.load(fp)
    except json.JSONDecodeError as exc:
        raise ModulesFileError(path, f"malformed JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ModulesFileError(path, f"file is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise ModulesFileError(path, f"cannot read file: {exc}") from exc

    triples = _parse(path, data)

    cache = {}
    entries = []
    by_full = {}
    by_keyword = {}
    for module_name, name, keywords in triples:
        mod = _import(path, module_name, cache)
        if not hasattr(mod, name):
            raise ModulesFileError(
                path, f"module '{module_name}' has no attribute '{name}'")
        full = f"{module_name}.{name}"
        if full in by_full:
            raise ModulesFileError(path, f"'{full}' is listed more than once")
        entry = _Entry(module_name, name, keywords, getattr(mod, name))
        for kw in keywords:
            if kw in by_keyword:
                raise ModulesFileError(
                    path, f"keyword '{kw}' is used by both "
                          f"'{by_keyword[kw].full_path}' and '{full}'")
            by_keyword[kw] = entry
        by_full[full] = entry
        entries.append(entry)

    # a keyword must not shadow a different object's full path or bare name
    for kw, entry in by_keyword.items():
        other = by_full.get(kw)
        if other is not None and other.obj is not entry.obj:
            raise ModulesFileError(
                path, f"keyword '{kw}' of '{entry.full_path}' is also the full "
                      f"path of a different entry")
        for other in entries:
            if other.name == kw and other.obj is not entry.obj:
                raise ModulesFileError(
                    path, f"keyword '{kw}' of '{entry.full_path}' is also the "
                          f"bare name of '{other.full_path}'")

    return ModuleRegistry(entries, path=path)
