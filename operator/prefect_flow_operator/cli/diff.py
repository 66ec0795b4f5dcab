"""`pfo diff`: what the operator would write to Prefect if these manifests were applied now.

It runs the operator's own planning on the cluster as it would be after the apply (the
manifests replace the cluster's objects of the same kind, namespace and name; with
--prune, the cluster's objects the manifests lack are deleted): `plan_deployment` per
PrefectFlowDeployment, the pool planner per PrefectWorkPool, and the tag-limit plan over
every resource in the cluster. Against Prefect it only reads (GETs and /filter pages);
against the cluster too.

Exit status, as `terraform plan -detailed-exitcode`: 0 no changes, 2 changes (a write,
or a refusal the operator would report), 1 error.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..api.flow_deployment import KIND as PFD
from ..api.flow_deployment import PLURAL as PFD_PLURAL
from ..api.flow_deployment import PrefectFlowDeploymentSpec
from ..api.work_pool import PLURAL as PWP_PLURAL
from ..api.work_pool import PrefectWorkPoolSpec
from ..config import OperatorConfig
from ..desired.deployment import Owner
from ..prefect.client import PrefectAPI, PrefectError, PrefectUnavailable
from ..prefect.deployments import UNSET
from ..prefect.work_pools import fetch_kubernetes_default_template
from ..reconciler.entries import DeploymentEntry, PoolEntry, deployment_entry, parse, pool_entry
from ..reconciler.pool_access import managed_pool_name as pool_name
from .connect import ClusterReader, kube_login, operator_config, prefect_api
from .diff_deployments import Target, diff_deployment, diff_release
from .diff_pools import access_checker, diff_pool, diff_pool_release
from .diff_render import render
from .diff_report import Report, ResourcePlan
from .diff_tags import diff_tag_limits
from .errors import CliError
from .manifests import Manifest, load

EXIT_NO_CHANGES, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
NEW_UID = "(new)"  # a resource the apply creates has no uid yet


@dataclass(frozen=True)
class DiffRequest:
    paths: tuple[str, ...]
    prune: bool = False
    output: str = "text"


@dataclass
class World:
    """The operator's resources as they would be after the apply, by key."""

    pfds: dict[str, dict[str, Any]]  # "namespace/name" -> object
    pwps: dict[str, dict[str, Any]]  # name -> object
    cluster_pfds: dict[str, dict[str, Any]]
    cluster_pwps: dict[str, dict[str, Any]]
    pruned_pfds: list[str] = field(default_factory=list)
    pruned_pwps: list[str] = field(default_factory=list)


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


def world(manifests: list[Manifest], pfds: list[dict[str, Any]], pwps: list[dict[str, Any]], prune: bool) -> World:
    cluster_pfds, cluster_pwps = {_key(o): o for o in pfds}, {_key(o): o for o in pwps}
    w = World(dict(cluster_pfds), dict(cluster_pwps), cluster_pfds, cluster_pwps)
    for m in manifests:
        target = w.pfds if m.kind == PFD else w.pwps
        old = target.get(_key(m.body)) or {}
        old_meta = old.get("metadata") or {}
        # kubectl apply keeps the object's identity and status; only the spec is replaced,
        # and a spec that changes (defaults applied) is a new generation.
        generation = old_meta.get("generation") or 0
        model = PrefectFlowDeploymentSpec if m.kind == PFD else PrefectWorkPoolSpec
        if not old or parse(model, old.get("spec") or {})[0] != parse(model, m.body.get("spec") or {})[0]:
            generation += 1
        meta = {**m.body["metadata"], "uid": old_meta.get("uid", NEW_UID), "generation": generation}
        target[_key(m.body)] = {**m.body, "metadata": meta, "status": old.get("status") or {}}
    if prune:
        covered = {m.namespace for m in manifests if m.kind == PFD}
        listed = {_key(m.body) for m in manifests}
        w.pruned_pfds = sorted(k for k in cluster_pfds if k.split("/")[0] in covered and k not in listed)
        if any(m.kind != PFD for m in manifests):
            w.pruned_pwps = sorted(k for k in cluster_pwps if k not in listed)
    return w


async def _template(api: PrefectAPI, pools: list[PoolEntry]) -> dict[str, Any] | None:
    needs = any(p.spec and p.spec.type == "kubernetes" and p.spec.base_job_template is None for p in pools)
    return await fetch_kubernetes_default_template(api) if needs else None


class Differ:
    def __init__(self, api: PrefectAPI, reader: ClusterReader, config: OperatorConfig) -> None:
        self.api, self.reader, self.config = api, reader, config
        self.report = Report()

    async def run(self, manifests: list[Manifest], w: World) -> Report:
        mine = {_key(m.body) for m in manifests}
        pools_after = [pool_entry(o) for k, o in w.pwps.items() if k not in w.pruned_pwps]
        pool_docs = await self._pools([p for p in pools_after if p.key in mine])
        live = [deployment_entry(o) for k, o in w.pfds.items() if k not in w.pruned_pfds]
        refused = await self._deployments([e for e in live if e.key in mine], w, pool_docs, pools_after)
        await self._prune(w, live)
        tags, writes = await diff_tag_limits(self.api, live, refused, self.config.cluster_name, self.report.resources)
        self.report.tag_limits, self.report.tag_writes = tags, writes
        return self.report

    async def _pools(self, entries: list[PoolEntry]) -> dict[str, Any]:
        template = await _template(self.api, entries)
        docs: dict[str, Any] = {}
        for e in entries:
            plan, doc = await diff_pool(self.api, e, template)
            self.report.resources.append(plan)
            if plan.action != "refused":
                docs[pool_name(e)] = doc
        return docs

    async def _deployments(
        self, entries: list[DeploymentEntry], w: World, pool_docs: dict[str, Any], pools: list[PoolEntry]
    ) -> set[str]:
        access = access_checker(pools, self._labels)
        claimed: dict[str, Owner] = {}
        refused: set[str] = set()
        # Resources already in the cluster hold their Prefect names; new ones come after.
        for e in sorted(entries, key=lambda e: e.uid == NEW_UID):
            plan = await self._deployment(e, w, pool_docs, access, claimed)
            self.report.resources.append(plan)
            if plan.action == "refused":
                refused.add(e.key)
        return refused

    async def _deployment(
        self, e: DeploymentEntry, w: World, pool_docs: dict[str, Any], access: Any, claimed: Any
    ) -> ResourcePlan:
        if e.spec is None:
            raw = w.pfds[e.key].get("spec") or {}
            target = f"{raw.get('flowName')}/{raw.get('deploymentName') or e.name}"
            return ResourcePlan(PFD, e.namespace, e.name, target, "refused", reason="InvalidSpec", message=e.invalid)
        old = w.cluster_pfds.get(e.key)
        old_spec = parse(PrefectFlowDeploymentSpec, (old or {}).get("spec") or {})[0] if old else None
        owner = Owner(self.config.cluster_name, str(e.namespace), e.name, e.uid)
        known = bool(((old or {}).get("status") or {}).get("triggers"))
        t = Target(str(e.namespace), e.name, e.spec, owner, spec_changed=old_spec != e.spec, known_triggers=known)
        return await diff_deployment(self.api, t, pool_docs.get(e.spec.pool.name, UNSET), access, claimed)

    async def _prune(self, w: World, live: list[DeploymentEntry]) -> None:
        for key in w.pruned_pfds:
            e = deployment_entry(w.cluster_pfds[key])
            if e.deleting:
                continue
            owner = Owner(self.config.cluster_name, str(e.namespace), e.name, e.uid)
            triggers = bool((e.spec and e.spec.triggers) or e.status.get("triggers"))
            released = await diff_release(self.api, str(e.namespace), e.name, e.raw, owner, triggers=triggers)
            self.report.resources.append(released)
        for key in w.pruned_pwps:
            p = pool_entry(w.cluster_pwps[key])
            users = sorted(e.key for e in live if e.spec and e.spec.pool.name == pool_name(p))
            self.report.resources.append(diff_pool_release(p, users))

    async def _labels(self, namespace: str) -> dict[str, str]:
        try:
            return await self.reader.namespace_labels(namespace)
        except Exception as exc:  # aiohttp's errors: the operator reports the same as KubernetesError
            raise CliError(f"cannot read the labels of namespace {namespace}: {exc}") from None


async def _cluster(reader: ClusterReader, config: OperatorConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The operator's view: the namespaces it watches (PFO_NAMESPACES), else all."""
    if config.namespaces:
        pfds = [o for ns in config.namespaces for o in await reader.list(PFD_PLURAL, ns)]
    else:
        pfds = await reader.list(PFD_PLURAL)
    return pfds, await reader.list(PWP_PLURAL)


async def compute(req: DiffRequest, api: PrefectAPI | None = None) -> Report:
    """The report for `req`; `api` given: the client to read Prefect through (tests count its requests)."""
    config = operator_config()
    reader = ClusterReader(kube_login())
    own_api = api is None
    client = api or prefect_api(config)
    try:
        manifests = load(req.paths, reader.default_namespace)
        if not manifests:
            raise CliError(f"no PrefectFlowDeployment or PrefectWorkPool in {', '.join(req.paths)}")
        pfds, pwps = await _cluster(reader, config)
        return await Differ(client, reader, config).run(manifests, world(manifests, pfds, pwps, req.prune))
    finally:
        await reader.close()
        if own_api:
            await client.aclose()


async def run(req: DiffRequest, out: TextIO = sys.stdout, api: PrefectAPI | None = None) -> int:
    report = await compute(req, api)
    if req.output == "json":
        out.write(json.dumps(report.as_json(), indent=2, default=str) + "\n")
    else:
        out.write(render(report, colour=out.isatty()))
    return EXIT_CHANGES if report.changes else EXIT_NO_CHANGES


def main(req: DiffRequest) -> int:
    try:
        return asyncio.run(run(req))
    except (CliError, PrefectUnavailable, PrefectError, ValueError) as exc:
        print(f"pfo diff: {exc}", file=sys.stderr)
        return EXIT_ERROR


