"""`{{ ... }}` placeholders of prefect.yaml, resolved the way `prefect deploy` resolves them.

`prefect deploy` fills three kinds of placeholder before it writes a deployment:

- `{{ $VAR }}`: an environment variable of the machine running the deploy;
- `{{ prefect.variables.NAME }}` / `{{ prefect.blocks.TYPE.NAME }}`: read from the server;
- `{{ STEP_ID.KEY }}`: an output of a build or push step (e.g. `{{ build-image.image }}`).

`pfo import` runs no steps and talks to no server, so each value comes from an option
(`--image`, `--set KEY=VALUE`) or, for `$VAR`, the environment; a placeholder nothing
resolves is an error that names the option to pass. `{{ ctx.* }}` placeholders are
runtime templates the worker fills per flow run: they are kept. In pull steps only the
outputs of build and push steps are filled, plus `$VAR` in a deployment's own `pull`
(what `prefect deploy` 3.9 does, verified against a real server): variables, blocks,
the outputs of earlier pull steps and `$VAR` in the file's top-level `pull` are
resolved at run time, inside the flow-run pod.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PLACEHOLDER = re.compile(r"{{\s*([^{}]*?)\s*}}")


class Unresolved(Exception):
    """A placeholder no option resolves."""

    def __init__(self, placeholder: str, hint: str) -> None:
        super().__init__(f"{{{{ {placeholder} }}}}: {hint}")
        self.placeholder = placeholder
        self.hint = hint


@dataclass
class Values:
    """Where placeholder values come from: `--set` (wins), `--image`, the environment."""

    sets: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    build_ids: frozenset[str] = frozenset()  # ids of build/push steps (deploy-time outputs)

    def lookup(self, key: str, *, runtime_ok: bool = False, env_ok: bool = False) -> tuple[bool, Any]:
        """(found, value). With runtime_ok, only build/push step outputs (and, with env_ok,
        `$VAR`) are looked up; the rest is kept for run time."""
        if key.startswith("ctx."):
            return False, None  # a worker-side runtime template
        if key.startswith("$"):
            if runtime_ok and not env_ok:
                return False, None
            return self._env_var(key)
        if key.startswith("prefect."):
            if runtime_ok:
                return False, None
            if key in self.sets:
                return True, self.sets[key]
            raise Unresolved(key, f"pfo import does not read Prefect variables or blocks; pass --set {key}=VALUE")
        if key in self.sets:
            return True, self.sets[key]
        return self._step_output(key, runtime_ok=runtime_ok)

    def _env_var(self, key: str) -> tuple[bool, Any]:
        name = key[1:]
        for k in (key, name):
            if k in self.sets:
                return True, self.sets[k]
        if name in self.env:
            return True, self.env[name]
        raise Unresolved(key, f"environment variable {name} is not set; pass --set {name}=VALUE (or export it)")

    def _step_output(self, key: str, *, runtime_ok: bool) -> tuple[bool, Any]:
        step = key.split(".", 1)[0]
        if runtime_ok and step not in self.build_ids:
            return False, None  # e.g. the output of an earlier pull step: filled at run time
        if key.endswith(".image") and self.image is not None:
            return True, self.image
        option = "--image IMG or --set " + key + "=VALUE" if key.endswith(".image") else f"--set {key}=VALUE"
        raise Unresolved(key, f"output of step {step!r}, which pfo import does not run; pass {option}")


def resolve(
    value: Any, values: Values, *, runtime_ok: bool = False, env_ok: bool = False, errors: list[Unresolved] | None = None
) -> Any:
    """`value` with every placeholder filled; a string that is one placeholder becomes the
    value itself (as Prefect's `apply_values` does). Raises Unresolved for the first
    placeholder nothing resolves, or, with `errors`, collects them all (leaving those
    strings as they are)."""
    if isinstance(value, dict):
        return {k: resolve(v, values, runtime_ok=runtime_ok, env_ok=env_ok, errors=errors) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, values, runtime_ok=runtime_ok, env_ok=env_ok, errors=errors) for v in value]
    if not isinstance(value, str) or "{{" not in value:
        return value
    try:
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole:
            found, got = values.lookup(whole.group(1), runtime_ok=runtime_ok, env_ok=env_ok)
            return got if found else value

        def sub(m: re.Match[str]) -> str:
            found, got = values.lookup(m.group(1), runtime_ok=runtime_ok, env_ok=env_ok)
            return str(got) if found else m.group(0)

        return PLACEHOLDER.sub(sub, value)
    except Unresolved as exc:
        if errors is None:
            raise
        errors.append(exc)
        return value


def has_placeholder(value: Any) -> bool:
    return isinstance(value, str) and bool(PLACEHOLDER.search(value))
