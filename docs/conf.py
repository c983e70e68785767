"""Sphinx configuration of the ngc-adex documentation (built with ``sphinx-build -W docs docs/_build/html``)."""
import inspect
import os
import sys

# Document this checkout's package, whatever is installed in the environment.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import ngc_adex  # noqa: E402

project = "ngc-adex"
author = "the ngc-adex developers"
copyright = "the ngc-adex developers"
version = release = ngc_adex.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_rtd_theme",
]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_snippets", "Thumbs.db", ".DS_Store"]  # _snippets: included by pages

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields: NamedTuple fields are documented once, by autodoc

html_theme = "sphinx_rtd_theme"
html_theme_options = {"navigation_depth": 3}

# napoleon reads the first line of a constant's or attribute's docstring as "type: description" (Google
# style); this package's ``#:`` comments are prose ("precise": a flight cut short ...), so those keep
# their text as written: saved before napoleon runs (priority 500) and put back after it.
_attribute_docs = {}


def _keep_attribute_doc(app, what, name, obj, options, lines):
    if what in ("data", "attribute"):
        _attribute_docs[name] = list(lines)


def _restore_attribute_doc(app, what, name, obj, options, lines):
    if what in ("data", "attribute") and name in _attribute_docs:
        lines[:] = _attribute_docs.pop(name)


def _signature_behind_deprecate_args(app, what, name, obj, options, signature, return_annotation):
    """ngcsimlib's ``deprecate_args`` wraps ``__init__`` as ``(*args, **kwargs)`` and keeps the original in
    ``_original``: a class so wrapped (``AdExCell``) shows the original's arguments."""
    original = getattr(getattr(obj, "__init__", None), "_original", None) if what == "class" else None
    if original is None:
        return None
    sig = inspect.signature(original)
    return str(sig.replace(parameters=list(sig.parameters.values())[1:])), return_annotation  # without self


def setup(app):
    app.connect("autodoc-process-signature", _signature_behind_deprecate_args)
    app.connect("autodoc-process-docstring", _keep_attribute_doc, priority=400)
    app.connect("autodoc-process-docstring", _restore_attribute_doc, priority=600)
