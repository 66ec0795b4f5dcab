"""`pfo`: migration tooling for prefect-flow-operator.

    pfo import prefect.yaml [--out DIR] [--namespace NS] [--image IMG] [--set KEY=VALUE ...]
                            [--adopt] [--pools] [--schemas] [--code-dir DIR]
    pfo schema path/to/file.py:flow [--code-dir DIR] [-o json|yaml]
    pfo run [-n NAMESPACE] NAME [--param KEY=VALUE ...] [--watch]
    pfo diff -f PATH ... [--prune] [-o text|json]

Manifests go to stdout (one YAML stream) or, with --out, one file per resource. Notes
(keys not mapped, values derived) go to stderr; errors too, with exit status 1.
Nothing here is imported by the operator; prefect-client is imported only by --schemas
and `pfo schema`. `run` and `diff` (docs/cli.md) use the user's kubeconfig and the
operator's Prefect settings and client.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .flowcode import FlowCodeError, load_flow
from .importer import ImporterError, Options, import_prefect_yaml

EPILOG = "See docs/importer.md for every mapping rule and the differences from `prefect deploy`."


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pfo", description="prefect-flow-operator tooling", epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import", help="prefect.yaml -> PrefectFlowDeployment manifests", epilog=EPILOG)
    imp.add_argument("prefect_yaml", type=Path, help="the prefect.yaml to import")
    imp.add_argument("--out", type=Path, help="write one file per resource into DIR (default: stdout)")
    imp.add_argument("--namespace", "-n", help="metadata.namespace of the PrefectFlowDeployments")
    imp.add_argument(
        "--image", help="the flow image: fills {{ STEP.image }} and image templates, or deployments without an image"
    )
    imp.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
        help="a placeholder's value: build-image.tag=1.2, PREFECT_DEPLOY_IMAGE=..., prefect.variables.x=... (repeatable)",
    )
    imp.add_argument("--adopt", action="store_true", help="set spec.adopt: take over the deployments `prefect deploy` created")
    imp.add_argument("--pools", action="store_true", help="also write a PrefectWorkPool per work pool used")
    imp.add_argument(
        "--schemas", action="store_true", help="load each flow (needs its code and prefect-client) to fill parameterSchema"
    )
    imp.add_argument("--code-dir", type=Path, help="where entrypoints are resolved (default: the prefect.yaml's directory)")

    sch = sub.add_parser("schema", help="print a flow's parameter schema, ready for spec.parameterSchema", epilog=EPILOG)
    sch.add_argument("entrypoint", help="path/to/file.py:flow_function")
    sch.add_argument("--code-dir", type=Path, default=Path("."), help="directory the entrypoint is relative to (default: .)")
    sch.add_argument("-o", "--output", choices=("json", "yaml"), default="json")
    _run_parser(sub)
    _diff_parser(sub)
    return p


def _run_parser(sub: Any) -> None:
    epilog = (
        "Exit status: 0 created (--watch: Completed), 1 error or not Ready, 3 Failed, 4 Crashed, 5 Cancelled, "
        "130 interrupted. See docs/cli.md."
    )
    run = sub.add_parser("run", help="start a flow run of a PrefectFlowDeployment's deployment", epilog=epilog)
    run.add_argument("name", help="the PrefectFlowDeployment (metadata.name)")
    run.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig context's, else default)")
    run.add_argument(
        "--param", dest="params", action="append", default=[], metavar="KEY=VALUE",
        help="a flow parameter; VALUE is taken as JSON when it parses (3, true, [1]), else as a string (repeatable)",
    )
    run.add_argument("--watch", action="store_true", help="follow the run until it ends; its end decides the exit status")
    run.add_argument("--poll-interval", type=float, default=2.0, metavar="SECONDS", help="seconds between state reads (--watch)")


def _diff_parser(sub: Any) -> None:
    epilog = "Exit status: 0 no changes, 2 changes (or conflicts), 1 error. See docs/cli.md."
    diff = sub.add_parser("diff", help="what applying manifests would change in Prefect (read-only)", epilog=epilog)
    diff.add_argument(
        "-f", "--filename", dest="paths", action="append", default=[], metavar="PATH",
        help="a manifest file, a directory of them (recursive), or - for stdin (repeatable)",
    )
    diff.add_argument(
        "--prune", nargs="?", const=True, default=False, metavar="DIR",
        help="the manifests are complete (DIR given: DIR is read too): resources in the cluster, in the namespaces "
        "the manifests cover, that they lack are deleted",
    )
    diff.add_argument("-o", "--output", choices=("text", "json"), default="text")


def _sets(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"pfo import: --set {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)


def cmd_import(args: argparse.Namespace) -> int:
    path: Path = args.prefect_yaml
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"pfo import: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    except yaml.YAMLError as exc:
        print(f"pfo import: {path} is not valid YAML: {exc}", file=sys.stderr)
        return 1
    code_dir = args.code_dir or path.resolve().parent
    opts = Options(
        namespace=args.namespace,
        image=args.image,
        sets=_sets(args.sets),
        env=dict(os.environ),
        adopt=args.adopt,
        pools=args.pools,
        schemas=args.schemas,
        code_dir=code_dir,
        project_dir_name=path.resolve().parent.name,
    )
    try:
        result = import_prefect_yaml(doc, opts, loader=load_flow if args.schemas else None)
    except ImporterError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"pfo import: {path}: {len(exc.problems)} error(s); nothing written", file=sys.stderr)
        return 1
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for m in result.manifests:
            prefix = "pwp" if m["kind"] == "PrefectWorkPool" else "pfd"
            target = args.out / f"{prefix}-{m['metadata']['name']}.yaml"
            target.write_text(_dump(m), encoding="utf-8")
            print(f"wrote {target}", file=sys.stderr)
    else:
        sys.stdout.write("---\n".join(_dump(m) for m in result.manifests))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    try:
        loaded = load_flow(args.code_dir, args.entrypoint)
    except FlowCodeError as exc:
        print(f"pfo schema: {exc}", file=sys.stderr)
        return 1
    if args.output == "yaml":
        sys.stdout.write(_dump({"parameterSchema": loaded.parameter_schema}))
    else:
        sys.stdout.write(json.dumps(loaded.parameter_schema, indent=2) + "\n")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from . import run  # the day-2 commands load their clients only when used
    from .errors import CliError

    try:
        params = run.parse_params(args.params)
    except CliError as exc:
        print(f"pfo run: {exc}", file=sys.stderr)
        return 1
    return run.main(run.RunRequest(args.namespace, args.name, params, args.watch, args.poll_interval))


def cmd_diff(args: argparse.Namespace) -> int:
    from . import diff

    paths = [*args.paths, *([args.prune] if isinstance(args.prune, str) else [])]
    if not paths:
        print("pfo diff: no manifests: pass -f PATH (a file, a directory or -) or --prune DIR", file=sys.stderr)
        return 1
    return diff.main(diff.DiffRequest(tuple(paths), bool(args.prune), args.output))


COMMANDS = {"import": cmd_import, "schema": cmd_schema, "run": cmd_run, "diff": cmd_diff}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
