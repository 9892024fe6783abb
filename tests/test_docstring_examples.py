"""Runs the `Example:` sections of every public zoo docstring, so they cannot rot."""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import zoo


def _modules():
    for info in pkgutil.walk_packages(zoo.__path__, "zoo."):
        yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs=dict(vars(module))):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
    if "Example:" in inspect.getsource(module):
        assert result.attempted > 0, f"{name} has an Example: section that doctest did not find"
