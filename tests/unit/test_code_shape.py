"""Functions in the operator's control path stay short enough to read in one screen.

A function is counted from its `def` line to the last line of its body: decorators are not
counted, the docstring is. Nested functions and methods are checked on their own too.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "prefect_flow_operator"
CHECKED_DIRS = ("handlers", "prefect", "reconciler")
MAX_LINES = 40

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def _sources() -> list[Path]:
    return sorted(p for d in CHECKED_DIRS for p in (PACKAGE / d).rglob("*.py"))


def _functions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, FunctionNode]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{child.name}"
            yield name, child
            yield from _functions(child, f"{name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def function_lengths(path: Path) -> Iterator[tuple[str, int, int]]:
    """(qualified name, `def` line, length in lines) of every function in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for name, fn in _functions(tree):
        assert fn.end_lineno is not None
        yield name, fn.lineno, fn.end_lineno - fn.lineno + 1


def test_there_are_sources_to_check() -> None:
    for d in CHECKED_DIRS:
        assert list((PACKAGE / d).rglob("*.py")), f"{d}/ has no Python files: is CHECKED_DIRS stale?"


def test_the_counter_counts_from_def_to_the_end_of_the_body(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        textwrap.dedent(
            '''\
            @decorator
            @other
            def f():
                """doc"""
                return 1


            class C:
                async def g(self):
                    def h():
                        pass
                    return h
            '''
        )
    )
    assert list(function_lengths(src)) == [("f", 3, 3), ("C.g", 9, 4), ("C.g.h", 10, 2)]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_functions_are_at_most_40_lines(path: Path) -> None:
    rel = path.relative_to(ROOT)
    too_long = [
        f"{rel}:{name} (line {line}, {length} lines)" for name, line, length in function_lengths(path) if length > MAX_LINES
    ]
    assert not too_long, f"functions longer than {MAX_LINES} lines (split them):\n" + "\n".join(too_long)
