"""Sphinx configuration for meas_extensions_madness (built with ``make docs``; -W: no warnings)."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "python")))

project = "meas_extensions_madness"
author = "meas_extensions_madness developers"
copyright = "2026, meas_extensions_madness developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
master_doc = "index"
# _generated/ holds benchmark tables that pages include; they are not pages of their own.
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Heavy optional imports are not needed to document the API.
autodoc_mock_imports = ["torch", "zuko", "scarlet2", "jax"]
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
suppress_warnings = ["myst.header"]

html_theme = "alabaster"
html_static_path = []
