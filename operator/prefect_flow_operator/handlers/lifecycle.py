"""Operator start and stop: settings, login, the Prefect client, the sweep task."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from ..config import OperatorConfig
from ..heap import trim_forever
from ..kube import kopf_session
from ..metrics import Metrics
from ..prefect.client import PrefectAPI
from ..prefect.deployments import POOL_FRESH_SECONDS
from ..reconciler.runtime import Runtime, runtime

log = logging.getLogger(__name__)
FINALIZER = "pfo.dev/finalizer"
LIST_CHUNK = 200


class GenerationDiffBase(kopf.StatusDiffBaseStorage):
    """Remember the generation a handler last finished, not a copy of the spec.

    kopf's default keeps the whole spec in the object to diff against, which doubles
    its size: a spec near the API server's limit then fails every status write and the
    resource can no longer be deleted. The reconcilers compare the spec with Prefect,
    never with an older spec, so a change of `metadata.generation` is all they need."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return {"metadata": {"generation": body.get("metadata", {}).get("generation")}}


@kopf.on.login()
async def login(memo: kopf.Memo, **kwargs: Any) -> kopf.AiohttpSession | None:
    # kopf's own minimal logins: no Kubernetes client library in the operator's memory.
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        return None
    # The sweep writes status with the same identity; kopf logs in again when its
    # credentials stop working (an expiring token), and the writer follows.
    rt = runtime(memo)
    await rt.use_connection(info)
    return kopf_session(info, rt.config.namespaces)


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    config = OperatorConfig.from_env()
    # Progress and diff base live in status.kopf, not in annotations: a GitOps tool
    # comparing metadata sees nothing but our finalizer.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = GenerationDiffBase(field="status.kopf.diffBase")
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    # The start lists in pages: one LIST of 10,000 resources is parsed whole (~30 KB per
    # object with managedFields) before any object is indexed and trimmed.
    settings.watching.chunk_size = LIST_CHUNK
    settings.networking.request_timeout = 60
    settings.execution.max_workers = 4
    # No settings.queueing.worker_limit: kopf's per-object workers wait until every object
    # is indexed, so a limit below the number of resources deadlocks the start (seen at 100).
    metrics = Metrics()
    if config.metrics_port:
        metrics.serve(config.metrics_port, str(config.metrics_address))
    api = PrefectAPI(
        config.prefect_api_url,
        api_key=config.prefect_api_key.get_secret_value() if config.prefect_api_key else None,
        auth_string=config.prefect_api_auth_string.get_secret_value() if config.prefect_api_auth_string else None,
        observer=metrics.observe_request,
        max_concurrent_writes=config.prefect_write_concurrency,
        pool_fresh_seconds=POOL_FRESH_SECONDS,
    )
    memo.runtime = Runtime(config=config, api=api, metrics=metrics)
    memo.runtime.spawn(trim_forever(), name="heap-trim")
    logger.info(
        "Prefect API %s, cluster %r, resync every %ss", config.prefect_api_url, config.cluster_name, config.resync_seconds
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await runtime(memo).close()


@kopf.on.probe(id="prefect")
async def prefect_reachable(memo: kopf.Memo, **_: Any) -> bool:
    # Reported in the liveness endpoint's body. One quick attempt: kopf awaits probes when
    # /healthz is asked, and a hanging Prefect must not make the kubelet restart us.
    return await runtime(memo).api.health()
