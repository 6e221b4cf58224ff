"""Sphinx configuration of fastmlp's documentation.

Build: ``pip install ".[docs]"`` then ``sphinx-build -W -b html docs docs/_build/html``.
The gallery runs every ``examples/plot_*.py`` in its quick mode (``--quick``).
"""

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document the checkout being built, installed or not

import fastmlp  # noqa: E402

project = "fastmlp"
author = "the fastmlp developers"
copyright = "the fastmlp developers"  # noqa: A001 (Sphinx's name)
version = release = fastmlp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5",
                    "sg_execution_times.rst"]
templates_path = ["_templates"]
# sphinx_gallery_conf holds a function (reset_argv), which Sphinx cannot pickle for its
# environment cache; the cache is only an optimisation of incremental builds.
suppress_warnings = ["config.cache"]

# API reference: one page per public object, members documented, numpydoc sections.
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True,
                           "member-order": "groupwise"}
autodoc_typehints = "none"
numpydoc_show_class_members = False  # the class template lists the members itself
numpydoc_class_members_toctree = False

# No intersphinx: the build must pass offline, with warnings as errors.

def _quick_argv(gallery_conf, script_vars):
    """Arguments every gallery example runs with: its quick mode."""
    return ["--quick"]


sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # Examples named plot_*.py are executed; the Dask example (it starts a
    # cluster and needs MNIST) is shown without being run.
    "filename_pattern": r"/plot_",
    "reset_argv": _quick_argv,
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "plot_gallery": "True",
    "matplotlib_animations": False,
    "doc_module": ("fastmlp",),
    "backreferences_dir": None,
}

html_theme = "pydata_sphinx_theme"
html_title = f"fastmlp {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_prev_next": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"index": [], "design": []}
html_static_path = []

os.environ.setdefault("MPLBACKEND", "Agg")

#: ``:ref:`` and ``:term:`` roles, as scikit-learn's docstrings use them for labels of its own site.
_SKLEARN_ROLE = re.compile(r":(?:ref|term):`([^`<]*?)\s*(?:<[^>`]*>)?`")


def _plain_sklearn_roles(app, what, name, obj, options, lines):
    """Render the roles of inherited scikit-learn docstrings as plain text.

    Methods inherited from scikit-learn (``score``, ``get_params``, the metadata
    routing setters) refer to labels and glossary terms of scikit-learn's own
    site, which do not exist here.
    """
    module = getattr(obj, "__module__", None) or ""
    if module.startswith("sklearn"):
        lines[:] = [_SKLEARN_ROLE.sub(lambda m: m.group(1).strip() or "", line)
                    for line in lines]


def setup(app):
    """Connect the docstring filter."""
    app.connect("autodoc-process-docstring", _plain_sklearn_roles)
