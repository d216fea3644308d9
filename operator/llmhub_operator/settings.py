"""Operator settings from the environment; CLI flags in __main__ override them."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    watch_namespaces: str = ""  # comma list; empty watches all namespaces
    log_level: str = "INFO"
    metrics_port: int = 9090
    health_port: int = 8080
    peering_name: str = ""  # empty: standalone; set: kopf peering (leader election)

    @property
    def namespaces(self) -> list[str]:
        return [ns.strip() for ns in self.watch_namespaces.split(",") if ns.strip()]
