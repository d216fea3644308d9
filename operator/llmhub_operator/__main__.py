"""``llmhub-operator`` / ``python -m llmhub_operator``: settings, metrics server, then kopf."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import kopf
import prometheus_client
from pydantic import ValidationError

from llmhub_common.logging import configure as configure_logging
from llmhub_operator.access_policy import AccessPolicy, PolicyError
from llmhub_operator.gateway_accounts import GatewayAccounts
from llmhub_operator.gateways.model import GatewaySettings
from llmhub_operator.keyvault import KeyVaultSource
from llmhub_operator.settings import OperatorSettings
from llmhub_operator.supervisor import Supervisor


def parse_args(argv: Sequence[str] | None, env: OperatorSettings) -> OperatorSettings:
    """Flags override the environment; the result is one settings object."""
    parser = argparse.ArgumentParser(prog="llmhub-operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", dest="namespaces", default=None)
    scope.add_argument("--all-namespaces", "-A", action="store_true")
    parser.add_argument("--metrics-port", type=int, default=env.metrics_port)
    parser.add_argument("--health-port", type=int, default=env.health_port)
    parser.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=env.leader_election,
        help="HA: act only while holding the Lease (needs POD_NAMESPACE)",
    )
    parser.add_argument("--log-level", default=env.log_level)
    args = parser.parse_args(argv)
    namespaces = env.watch_namespaces
    if args.all_namespaces:
        namespaces = ""
    elif args.namespaces:
        namespaces = ",".join(args.namespaces)
    return env.model_copy(
        update={
            "watch_namespaces": namespaces,
            "log_level": args.log_level,
            "metrics_port": args.metrics_port,
            "health_port": args.health_port,
            "leader_election": args.leader_election,
        }
    )


async def run(settings: OperatorSettings, policy: AccessPolicy) -> None:
    import llmhub_operator.handlers  # (registers the handlers with kopf)

    if GatewaySettings().enabled:  # registered after: its startup uses the operator's memo
        import llmhub_operator.gateways.handlers  # noqa: F401

    namespaces = settings.namespaces
    supervisor = Supervisor()
    memo = kopf.Memo(
        lease=settings.lease(),
        namespaces=namespaces,
        policy=policy,
        supervisor=supervisor,
        request_timeout=settings.kube_request_timeout_seconds,
    )
    await kopf.operator(
        standalone=True,  # HA is our Lease (leader.py), not kopf peering
        memo=memo,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
        stop_flag=supervisor.stop,  # a background task died: stop, then exit non-zero
    )
    if supervisor.failed:
        raise SystemExit(f"llmhub-operator: background task {supervisor.failed!r} ended; exiting")


def main(argv: Sequence[str] | None = None) -> None:
    try:
        env = OperatorSettings()
    except ValidationError as exc:
        raise SystemExit(f"llmhub-operator: invalid settings: {_first_error(exc)}") from None
    settings = parse_args(argv, env)
    if settings.leader_election and not settings.pod_namespace:
        raise SystemExit("llmhub-operator: --leader-election needs POD_NAMESPACE")
    policy = access_policy()  # refuse unsafe vault settings before anything starts
    try:
        GatewayAccounts.from_env(settings.pod_namespace)
        GatewaySettings()
    except ValueError as exc:  # pydantic's ValidationError is one too
        raise SystemExit(f"llmhub-operator: {exc}") from None
    configure_logging(settings.log_level)
    prometheus_client.start_http_server(settings.metrics_port)
    asyncio.run(run(settings, policy))


def access_policy() -> AccessPolicy:
    """The vault policy from the environment; wrong or unsafe settings stop the start."""
    try:
        policy = AccessPolicy.from_env()
    except PolicyError as exc:
        raise SystemExit(f"llmhub-operator: {exc}") from None
    if not KeyVaultSource.from_env().verify_challenge_resource and not policy.explicit:
        raise SystemExit(
            "llmhub-operator: LLMHUB_AZURE_VERIFY_CHALLENGE_RESOURCE=false is accepted only "
            "together with an explicit LLMHUB_ALLOWED_VAULTS (a stand-in vault is a deliberate "
            "choice: without the check any host could answer the challenge for another resource)"
        )
    return policy


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]).upper()
    return f"{where}: {error['msg']}" if where else str(error["msg"])


if __name__ == "__main__":
    main()
