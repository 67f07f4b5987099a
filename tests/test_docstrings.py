"""Every public function of ``deblend/`` and ``models/`` has numpydoc Parameters, Returns and Examples (issue 19).

Public: the functions of each module's ``__all__``, and the public methods of the classes of its ``__all__``
(Tasks and their Configs excepted: their interface is the Task pattern's, ``run`` and the config fields).
A function needs ``Parameters`` when it takes arguments, ``Returns`` (or ``Yields``) unless it returns
None, and ``Examples``; a method may show its example in its class's docstring (a network's ``forward``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

from lsst.meas.extensions.madness import deblend, models
from lsst.meas.extensions.madness.framework import Config, Task

MODULES = sorted(info.name for package in (deblend, models)
                 for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."))


def _sections(doc: str | None) -> set[str]:
    """The numpydoc section titles of a docstring (a title line underlined by dashes)."""
    return set(re.findall(r"^\s*([A-Z][A-Za-z ]+)\n\s*-{3,}\s*$", inspect.cleandoc(doc or ""), flags=re.MULTILINE))


def _missing(function, classDoc: str | None = None) -> list[str]:
    sections = _sections(inspect.getdoc(function))
    signature = inspect.signature(function)
    arguments = [name for name in signature.parameters if name not in ("self", "cls")]
    returnsNone = signature.return_annotation in (None, "None")
    missing = []
    if arguments and "Parameters" not in sections:
        missing.append("Parameters")
    if not returnsNone and not sections & {"Returns", "Yields"}:
        missing.append("Returns")
    if "Examples" not in sections and "Examples" not in _sections(classDoc):
        missing.append("Examples")
    return missing


def _publicFunctions(module):
    """(label, function, class docstring) of the module's public functions and public-class methods."""
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if getattr(obj, "__module__", None) != module.__name__:
            continue  # re-exported from elsewhere: checked there
        if inspect.isfunction(obj):
            yield name, obj, None
        elif inspect.isclass(obj) and not issubclass(obj, (Task, Config)):
            for attribute, value in vars(obj).items():
                function = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
                if not attribute.startswith("_") and inspect.isfunction(function):
                    yield f"{name}.{attribute}", function, obj.__doc__


@pytest.mark.parametrize("moduleName", MODULES)
def test_public_functions_have_numpydoc_sections(moduleName):
    module = importlib.import_module(moduleName)
    problems = [f"{label}: no {', '.join(missing)}" for label, function, classDoc in _publicFunctions(module)
                if (missing := _missing(function, classDoc))]
    assert not problems, f"{moduleName}: " + "; ".join(problems)


def test_the_check_finds_what_it_looks_for():
    def documented(x: int) -> int:
        """One.

        Parameters
        ----------
        x : `int`
            A number.

        Returns
        -------
        y : `int`
            The same.

        Examples
        --------
        >>> documented(1)
        1
        """
        return x

    def bare(x: int) -> None:
        """Nothing but a summary."""

    assert _missing(documented) == []
    assert _missing(bare) == ["Parameters", "Examples"]
    assert _missing(bare, classDoc=documented.__doc__) == ["Parameters"]
