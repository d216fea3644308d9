"""The CLI runs against the fake Key Vault (real Azure SDK) and the real control plane."""

from __future__ import annotations

from tests.operator.conftest import azure_env, fake_azure, vault_url  # noqa: F401
