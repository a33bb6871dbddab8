"""Sphinx configuration of the concurrency_kit documentation.

Build (CI runs both, with warnings as errors and every reference checked, and then fails if a
built page shows a docutils system message box, which -W does not catch)::

    python -m sphinx -W -n --keep-going -b html docs docs/_build/html
    python docs/_ext/check_html.py docs/_build/html
    python -m sphinx -W -n --keep-going -b doctest docs docs/_build/doctest

The versions the build is checked with are pinned in the ``docs`` extra (pyproject.toml).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.errors import PycodeError
from sphinx.ext import intersphinx
from sphinx.pycode import ModuleAnalyzer

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

from stdlib_inventory import write_inventory  # noqa: E402

import concurrency_kit  # noqa: E402

# -- project ---------------------------------------------------------------------------------

project = "concurrency_kit"
author = "concurrency_kit developers"
copyright = "concurrency_kit developers"
release = concurrency_kit.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx_copybutton",
    "ck_table",
]

exclude_patterns = ["_build"]
nitpicky = True
# Narrow exceptions only; each one says why it cannot be a link.
nitpick_ignore = [
    # Type variables in signatures (``Future[T]``, ``Callable[..., T]``): autodoc renders them
    # as references to the private module that declares them, but a TypeVar is no documented
    # object.
    ("py:class", "concurrency_kit.pools._base.T"),
    ("py:class", "concurrency_kit.protocols.T"),
    ("py:class", "concurrency_kit.sync._algorithms.T"),
    ("py:class", "concurrency_kit.sync.thread.T"),
    ("py:class", "concurrency_kit.sync.process.T"),
    ("py:class", "concurrency_kit.channels._base.T"),
    ("py:class", "concurrency_kit.channels.thread.T"),
    ("py:class", "concurrency_kit.channels.process.T"),
    # queue.Empty is defined in C as _queue.Empty: ChannelEmpty's base, shown by
    # :show-inheritance:, under the name the inventory does not have.
    ("py:class", "_queue.Empty"),
    # ChildSpec.shutdown's type: the class of the BRUTAL_KILL constant (documented as data).
    ("py:class", "_BrutalKill"),
    # distributed.Client in ClusterPool's signature and ``client`` property: dask's objects
    # are not in the (offline) intersphinx inventory, and the extra is optional.
    ("py:class", "Client"),
    ("py:class", "distributed.Client"),
    # src/concurrency_kit/pools/_map.py, MapIterator's docstring, refers to the private
    # PoolBase.map (reported to the lead; the public targets are ProcessPool.map and
    # ThreadPool.map). Remove once the docstring is fixed.
    ("py:meth", "PoolBase.map"),
]

# -- autodoc and napoleon --------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_class_signature = "mixed"
autoclass_content = "class"
python_use_unqualified_type_names = True

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_include_init_with_doc = False
napoleon_use_rtype = False

# -- intersphinx: the Python docs, with a local inventory when there is no network -----------

# Generated at every build from the running interpreter (see _ext/stdlib_inventory.py); Sphinx
# tries docs.python.org first and falls back to this file with an info message only.
_PYTHON_INVENTORY = write_inventory(DOCS / "_build" / "intersphinx" / "python-objects.inv")
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", (None, str(_PYTHON_INVENTORY))),
}
intersphinx_timeout = 3

# -- doctest ---------------------------------------------------------------------------------

# Functions defined in a doctest then belong to a module named __main__, as in a script:
# cloudpickle pickles them by value at once, instead of searching every loaded module for
# them on each call (milliseconds per task in a process as large as Sphinx).
doctest_global_setup = """
__name__ = "__main__"
import sys
import concurrency_kit
from concurrency_kit import INTERPRETER, PROCESS, THREAD, ProcessPool, ThreadPool
"""

# -- HTML ------------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"concurrency_kit {release}"
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True


# -- local fixes, connected in setup() -------------------------------------------------------

# Standard-library classes whose __module__ is a private module: annotations and "Bases:" lines
# name the private path, the Python docs the public one.
_PUBLIC_MODULE_OF = {
    "concurrent.futures._base": "concurrent.futures",
    "_pickle": "pickle",
}


def _resolve_private_stdlib_path(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    """Resolve ``concurrent.futures._base.Future`` as ``concurrent.futures.Future``."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    for private, public in _PUBLIC_MODULE_OF.items():
        if target.startswith(private + "."):
            retry = node.deepcopy()
            retry["reftarget"] = public + target[len(private) :]
            return intersphinx.missing_reference(app, env, retry, contnode)
    return None


def _reexported_data_docstring(
    app: Sphinx, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    """Give re-exported data (``concurrency_kit.PROCESS``) its own docstring, not its class's.

    ``autodata`` looks for the docstring under an assignment in the module it is
    asked about (``concurrency_kit/__init__.py``), which only re-exports the object, and falls
    back to the docstring of the value's class. Look for the assignment's docstring in the
    private module that defines the object instead; without one, show no docstring at all.
    """
    if what != "data" or not name.startswith("concurrency_kit."):
        return
    attr = name.rpartition(".")[2]
    for module_name in sorted(sys.modules):
        if not module_name.startswith("concurrency_kit."):
            continue
        if getattr(sys.modules[module_name], attr, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
        except PycodeError:  # pragma: no cover - a module without source
            continue
        if ("", attr) in docs:
            lines[:] = list(docs["", attr])
            return
    if type(obj).__doc__ and not isinstance(obj, type):
        lines[:] = []


# Classes users receive but never construct: their constructor's parameters are machinery.
_NOT_CONSTRUCTED = frozenset({"concurrency_kit.MapIterator"})


def _hide_constructor_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: Any,
    signature: str | None,
    return_annotation: str,
) -> tuple[str, str] | None:
    """Show ``class Pool`` rather than ``class Pool(*args, **kwargs)`` for protocols."""
    if what != "class":
        return None
    if name in _NOT_CONSTRUCTED or getattr(obj, "_is_protocol", False):
        return "", ""
    return None


def setup(app: Sphinx) -> None:
    """Connect the local fixes above."""
    app.connect("missing-reference", _resolve_private_stdlib_path)
    app.connect("autodoc-process-docstring", _reexported_data_docstring)
    app.connect("autodoc-process-signature", _hide_constructor_signature)
