"""What the operator's ServiceAccount may do, asked of the real RBAC authorizer verb by verb."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from itertools import product

from kubernetes_asyncio import client

from tests.k8s.kube import GROUP, PLURAL

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
# (namespace or "" for cluster scope, group, resource, subresource, name)
Target = tuple[str, str, str, str, str]


# Whoever holds a token of this ServiceAccount may escalate ClusterRoles: cluster-admin.
SYSTEM_ACCOUNT = "clusterrole-aggregation-controller"
# What the operator may do to the objects of an LLMGateway (operator.llmGateways, on by default).
OWNS = frozenset({"get", "list", "create", "patch", "delete"})
GATEWAY_KINDS = (
    ("", "services"),
    ("", "serviceaccounts"),
    ("apps", "deployments"),
    ("networking.k8s.io", "networkpolicies"),
    ("networking.k8s.io", "ingresses"),
    ("policy", "poddisruptionbudgets"),
    ("autoscaling", "horizontalpodautoscalers"),
)


def operator_needs(
    release: str,
    namespaces: list[str],
    watched: set[str] | None,
    cluster_wide: bool,
    token_grants: dict[str, set[str]] | None = None,
    gateways: bool = True,
    gateway_namespaces: Collection[str] = (),
) -> dict[Target, set[str]]:
    """The verbs the operator of ``release`` must have, and no more (``watched=None``: all).

    ``token_grants``: the ServiceAccounts, per namespace, whose namespace opted in to tokens.
    Every other ServiceAccount, named or not, of any namespace (kube-system too): no token.
    ``gateways``: LLMGateways are read and their status written; ``gateway_namespaces``: where
    their objects are owned (operator.llmGateways.namespaces), never with a token or a Secret."""
    grants = token_grants or {}
    owns = set(OWNS) if gateways else set()
    operator, gateway = f"{release}-llm-mcp-hub-operator", f"{release}-llm-mcp-hub-gateway"
    home = namespaces[0]  # the release namespace
    secrets = {"get", "list", "watch", "create", "update"}
    needs: dict[Target, set[str]] = {
        ("", "apiextensions.k8s.io", "customresourcedefinitions", "", ""): {"get", "list", "watch"},
        # kopf follows named namespaces; watching all it never lists them.
        ("", "", "namespaces", "", ""): set() if cluster_wide else {"list", "watch"},
        ("", "", "secrets", "", ""): secrets if cluster_wide else set(),
        ("", GROUP, PLURAL, "", ""): {"get", "list", "watch", "patch"} if cluster_wide else set(),
        ("", GROUP, "llmgateways", "", ""): (
            {"get", "list", "watch"} if cluster_wide and gateways else set()
        ),
        # Never cluster-wide: Deployments anywhere could run pods as any ServiceAccount.
        ("", "apps", "deployments", "", ""): set(),
        ("", "", "serviceaccounts", "", ""): set(),
        ("", "", "serviceaccounts", "token", ""): set(),
        ("kube-system", "", "serviceaccounts", "", SYSTEM_ACCOUNT): set(),
        ("kube-system", "", "serviceaccounts", "token", SYSTEM_ACCOUNT): set(),
        ("kube-system", "", "serviceaccounts", "token", ""): set(),
        ("kube-system", "", "secrets", "", ""): secrets if cluster_wide else set(),
    }
    for group, resource in GATEWAY_KINDS:  # not even watching all namespaces
        needs[("kube-system", group, resource, "", "")] = set()
    for ns in namespaces:
        mine = watched is None or ns in watched
        # LLMGateways' objects only in the namespaces named in operator.llmGateways.namespaces.
        owning = owns if ns in gateway_namespaces else set()
        needs |= {
            (ns, "coordination.k8s.io", "leases", "", ""): (
                {"get", "create", "update"} if ns == home else set()
            ),
            (ns, GROUP, PLURAL, "", ""): {"get", "list", "watch", "patch"} if mine else set(),
            (ns, GROUP, PLURAL, "status", ""): {"patch"} if mine else set(),
            (ns, "", "secrets", "", ""): secrets if mine else set(),
            (ns, "", "events", "", ""): {"create"} if mine else set(),
            (ns, "events.k8s.io", "events", "", ""): set(),  # kopf and events.py: core v1
            (ns, "apps", "deployments", "", gateway): (
                {"get", "list", "watch", "patch"} if mine else set()
            )
            | owning,
            (ns, "apps", "deployments", "", operator): owning,
            (ns, "apps", "deployments", "", ""): owning,
            (ns, "", "configmaps", "", ""): set(),
            (ns, "", "pods", "", ""): set(),
            # Per-namespace Workload Identity: a TokenRequest only for accounts granted by name.
            (ns, "", "serviceaccounts", "", ""): owning,
            (ns, "", "serviceaccounts", "token", ""): set(),
            (ns, "", "serviceaccounts", "token", "default"): set(),
            (ns, "", "serviceaccounts", "", operator): owning,
            (ns, "", "serviceaccounts", "token", operator): set(),
            (ns, GROUP, "llmgateways", "", ""): {"get", "list", "watch"}
            if mine and gateways
            else set(),
            (ns, GROUP, "llmgateways", "status", ""): {"patch"} if mine and gateways else set(),
        }
        for group, resource in GATEWAY_KINDS:
            needs.setdefault((ns, group, resource, "", ""), owning)
        for account in grants.get(ns, set()):
            needs |= {
                (ns, "", "serviceaccounts", "", account): {"get"} | owning,
                (ns, "", "serviceaccounts", "token", account): {"create"},
            }
    return needs


async def granted(api: client.ApiClient, targets: list[Target]) -> dict[Target, set[str]]:
    """Every verb of VERBS on every target, by SelfSubjectAccessReview as ``api``'s identity."""
    authz = client.AuthorizationV1Api(api)

    async def allowed(target: Target, verb: str) -> bool:
        ns, group, resource, sub, name = target
        attrs = {"verb": verb, "group": group, "resource": resource}
        attrs |= {k: v for k, v in (("namespace", ns), ("subresource", sub), ("name", name)) if v}
        review = await authz.create_self_subject_access_review(
            {"spec": {"resourceAttributes": attrs}}
        )
        return bool(review.status.allowed)

    asks = list(product(targets, VERBS))
    answers = await asyncio.gather(*(allowed(target, verb) for target, verb in asks))
    result: dict[Target, set[str]] = {target: set() for target in targets}
    for (target, verb), ok in zip(asks, answers, strict=True):
        if ok:
            result[target].add(verb)
    return result
