"""The connections `pfo run` / `pfo diff` open: the user's kubeconfig, and Prefect with the
operator's own settings and client (PREFECT_API_URL, PREFECT_API_KEY or
PREFECT_API_AUTH_STRING; no second HTTP client).

Cluster access goes through kopf's logins and the operator's aiohttp-based reader, so
the CLI needs nothing the operator does not already install; a kubeconfig whose user
authenticates through an exec plugin (EKS, GKE) needs the `kubernetes` package, which
kopf then asks for the token.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf
from pydantic import ValidationError

from ..api import GROUP, VERSION
from ..config import OperatorConfig
from ..kube import KubeClient
from ..prefect.client import PrefectAPI
from .errors import CliError

log = logging.getLogger(__name__)


def operator_config(env: Mapping[str, str] | None = None) -> OperatorConfig:
    env = dict(os.environ if env is None else env)
    if not env.get("PREFECT_API_URL"):
        raise CliError("PREFECT_API_URL is not set: export the Prefect API the operator uses, e.g. http://prefect:4200/api")
    # The UI link: the operator's setting, else Prefect's own variable.
    env.setdefault("PFO_PREFECT_UI_URL", env.get("PREFECT_UI_URL", ""))
    try:
        return OperatorConfig.from_env(env)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CliError(f"operator setting {first['loc'][0]}: {first['msg']}") from None


def prefect_api(config: OperatorConfig) -> PrefectAPI:
    return PrefectAPI(
        config.prefect_api_url,
        api_key=config.prefect_api_key.get_secret_value() if config.prefect_api_key else None,
        auth_string=config.prefect_api_auth_string.get_secret_value() if config.prefect_api_auth_string else None,
    )


def kube_login() -> kopf.ConnectionInfo:
    """The current context of the user's kubeconfig (in a pod: its service account)."""
    settings = kopf.OperatorSettings()
    try:
        info = kopf.login_with_kubeconfig(settings=settings) or kopf.login_with_service_account(settings=settings)
    except (OSError, KeyError, kopf.LoginError) as exc:
        raise CliError(f"cannot read the kubeconfig ({exc}); check KUBECONFIG and its current-context") from None
    if info is None:
        raise CliError("no kubeconfig found: set KUBECONFIG or create ~/.kube/config")
    if not (info.token or info.certificate_path or info.certificate_data or info.username):
        # No static credentials: an exec or auth-provider plugin, which only the client library runs.
        via = kopf.login_via_client(logger=log, settings=settings)
        if via is not None:
            return dataclasses.replace(via, default_namespace=info.default_namespace)
    return info


class ClusterReader(KubeClient):
    """Reads custom resources and namespaces with the user's credentials (never writes)."""

    def __init__(self, info: kopf.ConnectionInfo) -> None:
        super().__init__(info)
        self.default_namespace = info.default_namespace or "default"

    async def _get(self, path: str) -> dict[str, Any] | None:
        try:
            async with self._session.get(f"{self._server}{path}") as resp:
                if resp.status == 404:
                    return None
                if resp.status in (401, 403):
                    raise CliError(f"the cluster refused GET {path} ({resp.status}): your kubeconfig user needs get/list on it")
                resp.raise_for_status()
                body: dict[str, Any] = await resp.json()
                return body
        except aiohttp.ClientError as exc:
            raise CliError(f"cannot reach the cluster at {self._server}: {exc}") from None

    async def get(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return await self._get(_path(plural, namespace) + f"/{name}")

    async def list(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of the kind (in `namespace`, or cluster-wide), all pages."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            page = await self._get(_path(plural, namespace) + "?limit=500" + (f"&continue={token}" if token else ""))
            if page is None:
                raise CliError(f"the cluster does not serve {plural}.{GROUP}: install the CRDs (crds/)")
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items


def _path(plural: str, namespace: str | None) -> str:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{GROUP}/{VERSION}{scope}/{plural}"
