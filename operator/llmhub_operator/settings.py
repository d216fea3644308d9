"""Operator settings from the environment; CLI flags in __main__ override them."""

from __future__ import annotations

import socket
import uuid

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmhub_operator.leader import LeaseSettings


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    watch_namespaces: str = ""  # comma list; empty watches all namespaces
    log_level: str = "INFO"
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    health_port: int = Field(default=8080, ge=0, le=65535)
    # HA: every replica watches, the holder of this Lease acts (the chart always turns it on).
    leader_election: bool = False
    lease_name: str = "llm-mcp-hub-operator"
    pod_namespace: str = ""  # the operator's own namespace (downward API): the Lease lives there
    pod_name: str = ""  # this replica's identity in the Lease (downward API)
    # Whole seconds: a Lease stores leaseDurationSeconds as an integer.
    lease_duration_seconds: int = Field(default=15, ge=2)
    lease_renew_deadline_seconds: int = Field(default=10, ge=2)
    lease_retry_period_seconds: int = Field(default=2, ge=1)
    # Every call of the operator's Kubernetes clients (ours and kopf's) ends within this; a watch
    # gets this long on top of its server-side timeout. Lease calls: what is left of the deadline.
    kube_request_timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _lease_timings(self) -> OperatorSettings:
        """The same rules client-go (and kubernetes_asyncio) enforce, said in our names."""
        if self.leader_election:
            if not self.pod_namespace:
                raise ValueError("LEADER_ELECTION=true needs POD_NAMESPACE (the Lease's namespace)")
            if self.lease_duration_seconds <= self.lease_renew_deadline_seconds:
                raise ValueError("LEASE_DURATION_SECONDS must exceed LEASE_RENEW_DEADLINE_SECONDS")
            if self.lease_renew_deadline_seconds <= 1.2 * self.lease_retry_period_seconds:
                raise ValueError(
                    "LEASE_RENEW_DEADLINE_SECONDS must exceed 1.2 x LEASE_RETRY_PERIOD_SECONDS"
                )
        return self

    @property
    def namespaces(self) -> list[str]:
        return [ns.strip() for ns in self.watch_namespaces.split(",") if ns.strip()]

    def lease(self) -> LeaseSettings | None:
        if not self.leader_election:
            return None
        # A pod name is unique among live pods; the suffix keeps a restarted process distinct.
        identity = f"{self.pod_name or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        return LeaseSettings(
            name=self.lease_name,
            namespace=self.pod_namespace,
            identity=identity,
            lease_duration=self.lease_duration_seconds,
            renew_deadline=self.lease_renew_deadline_seconds,
            retry_period=self.lease_retry_period_seconds,
        )
