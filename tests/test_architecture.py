"""Structure rules of DESIGN.md section 6, checked so they stay true."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import acctdomain
from acctdomain import errors

SRC = Path(acctdomain.__file__).parent
ALLOWED_IN_DOMAIN = ("attrs", "eventsourcing.domain", "acctdomain.domain", "acctdomain.errors")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((SRC / "domain").glob("*.py")), ids=lambda p: p.name)
def test_domain_imports_only_the_standard_library_attrs_and_eventsourcing_domain(
    path: Path,
) -> None:
    import sys

    for name in imported_modules(path):
        top = name.split(".")[0]
        allowed = (
            top in sys.stdlib_module_names
            or name == "__future__"
            or any(name == ok or name.startswith(ok + ".") for ok in ALLOWED_IN_DOMAIN)
        )
        assert allowed, f"{path.name} imports {name}"


def test_errors_module_imports_only_the_standard_library() -> None:
    import sys

    for name in imported_modules(SRC / "errors.py"):
        assert name == "__future__" or name.split(".")[0] in sys.stdlib_module_names, name


def test_every_error_is_public_documented_and_under_the_base_class() -> None:
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__ == errors.__name__
    }
    assert set(classes) == set(errors.__all__)
    for name, cls in classes.items():
        assert issubclass(cls, errors.AcctDomainError), name
        assert (cls.__doc__ or "").strip(), f"{name} has no docstring"


def all_modules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages([str(SRC)], prefix="acctdomain.")]


@pytest.mark.parametrize("module_name", ["acctdomain", *all_modules()])
def test_public_names_are_listed_sorted(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        return
    # Sorting itself is ruff's RUF022 (isort-style order); here: every listed name exists.
    for name in names:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name}"


def test_domain_does_not_import_the_application() -> None:
    for path in (SRC / "domain").glob("*.py"):
        assert not any(m.startswith("acctdomain.application") for m in imported_modules(path))
