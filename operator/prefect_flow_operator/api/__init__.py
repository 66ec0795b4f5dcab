"""API types of pfo.dev/v1alpha1: the single source the CRDs are generated from."""

from .common import Condition, ConditionStatus, DeletionPolicy
from .concurrency_limit import PrefectConcurrencyLimit, PrefectConcurrencyLimitSpec, PrefectConcurrencyLimitStatus
from .flow_deployment import PrefectFlowDeployment, PrefectFlowDeploymentSpec, PrefectFlowDeploymentStatus
from .work_pool import PrefectWorkPool, PrefectWorkPoolSpec, PrefectWorkPoolStatus

GROUP = "pfo.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "ConditionStatus",
    "DeletionPolicy",
    "PrefectConcurrencyLimit",
    "PrefectConcurrencyLimitSpec",
    "PrefectConcurrencyLimitStatus",
    "PrefectFlowDeployment",
    "PrefectFlowDeploymentSpec",
    "PrefectFlowDeploymentStatus",
    "PrefectWorkPool",
    "PrefectWorkPoolSpec",
    "PrefectWorkPoolStatus",
]
