"""What `prefect deploy` learns from the flow code: its name, description and parameter schema.

`prefect deploy` imports the entrypoint and reads the flow object: `flow.name` (the
`@flow(name=...)` argument, else the function name with `_` replaced by `-`),
`flow.description` (the `description=` argument, else the docstring) and
`parameter_schema(flow)`. `read_flow` gets name and description from the source
without executing it (standard library `ast` only). `load_flow` imports the module
through Prefect (prefect-client, imported lazily: the operator never loads it) for the
exact parameter schema; it executes the module, so the flow's imports must be installed.
"""

from __future__ import annotations

import ast
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class FlowInfo:
    name: str | None  # None: the decorator computes it (not a literal)
    description: str | None
    function: str


class FlowCodeError(Exception):
    pass


def split_entrypoint(entrypoint: str) -> tuple[str, str]:
    if ":" not in entrypoint:
        raise FlowCodeError(f"entrypoint {entrypoint!r} is not path/to/file.py:function")
    path, func = entrypoint.rsplit(":", 1)
    return path, func


def default_flow_name(function: str) -> str:
    """Prefect's default flow name for a function."""
    return function.replace("_", "-").replace("<lambda>", "unknown-lambda")


def _is_flow_decorator(node: ast.expr) -> ast.Call | bool:
    target = node.func if isinstance(node, ast.Call) else node
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
    if name != "flow":
        return False
    return node if isinstance(node, ast.Call) else True


def read_flow(code_dir: Path, entrypoint: str) -> FlowInfo | None:
    """Name and description of the flow at `entrypoint`, from source; None if the file is absent."""
    rel, func = split_entrypoint(entrypoint)
    path = (code_dir / rel).resolve()
    if not path.is_file():
        return None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise FlowCodeError(f"{rel}: cannot parse: {exc}") from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == func:
            for dec in node.decorator_list:
                found = _is_flow_decorator(dec)
                if not found:
                    continue
                kwargs = {k.arg: k.value for k in found.keywords} if isinstance(found, ast.Call) else {}
                name: str | None = default_flow_name(func)
                if "name" in kwargs:
                    v = kwargs["name"]
                    name = v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else None
                description = ast.get_docstring(node, clean=True)
                if "description" in kwargs:
                    v = kwargs["description"]
                    if isinstance(v, ast.Constant) and isinstance(v.value, str) and v.value:
                        description = v.value
                return FlowInfo(name, description, func)
            raise FlowCodeError(f"{rel}: function {func!r} is not decorated with @flow")
    raise FlowCodeError(f"{rel}: no function {func!r} at module level")


@contextlib.contextmanager
def _in_dir(path: Path) -> Iterator[None]:
    """Run with `path` as working directory and first on sys.path, as a worker does after
    its set_working_directory pull step."""
    old_cwd, old_path = os.getcwd(), list(sys.path)
    os.chdir(path)
    sys.path.insert(0, str(path))
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path


@dataclass
class LoadedFlow:
    name: str
    description: str | None
    parameter_schema: dict[str, Any]


def load_flow(code_dir: Path, entrypoint: str) -> LoadedFlow:
    """Import the flow with Prefect and generate its parameter schema exactly as
    `prefect deploy` does. Needs prefect-client (`pip install 'prefect-flow-operator[cli]'`)."""
    try:
        from prefect.flows import Flow, load_flow_from_entrypoint
        from prefect.utilities.callables import parameter_schema
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise FlowCodeError(
            f"parameter schemas need prefect-client ({exc}); install it: pip install 'prefect-flow-operator[cli]'"
        ) from None
    rel, _ = split_entrypoint(entrypoint)
    if not (code_dir / rel).is_file():
        raise FlowCodeError(f"{rel}: no such file under {code_dir}; pass --code-dir")
    with _in_dir(code_dir.resolve()):
        try:
            flow: Flow[..., Any] = load_flow_from_entrypoint(entrypoint)
        except Exception as exc:
            raise FlowCodeError(f"cannot load flow {entrypoint!r}: {exc}") from None
        schema = parameter_schema(flow).model_dump(exclude_unset=True, mode="json")
    return LoadedFlow(flow.name, flow.description, schema)
