"""``CallerAuth``: the enabled identity modes in one place, asked by REST, OpenAI and MCP alike.

A bearer token is offered to each enabled mode in turn (static keys, then Entra, then
Kubernetes); the first that recognises it decides. Without a token, or with one no mode
recognises (OpenAI SDKs always send some key), the caller is ``anonymous`` only when ``none``
is enabled; a token a mode recognises but rejects (expired...) is a 401 even then. With
AUTH_MODES unset every caller gets a 401 that names the setting. The token itself goes no
further than this module: nothing downstream (sessions, the CLIs, logs) ever sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from llmhub_gateway.auth.principal import ANONYMOUS, Principal, Verifier
from llmhub_gateway.core.config import Settings, split
from llmhub_gateway.errors import Unauthenticated

log = logging.getLogger(__name__)
UNSET = (
    "AUTH_MODES is not set: the gateway refuses every caller until it names the identity "
    "modes to accept (entra, kubernetes, static, or none for no authentication)"
)


class CallerAuth:
    def __init__(
        self, modes: frozenset[str] | None, verifiers: Sequence[Verifier], challenge: str
    ) -> None:
        self.modes = modes
        self._verifiers = list(verifiers)
        self.challenge = challenge

    @property
    def open(self) -> bool:
        """True when callers without a token are served (``none``)."""
        return self.modes is not None and "none" in self.modes

    def _refuse(self, message: str, error: str = "invalid_token") -> Unauthenticated:
        return Unauthenticated(message, f'{self.challenge}, error="{error}"')

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an ``Authorization`` header value (or its absence)."""
        if self.modes is None:
            raise Unauthenticated(UNSET, self.challenge)
        token = bearer_token(authorization)
        if token is None:
            if self.open:
                return Principal(ANONYMOUS, "none", label=ANONYMOUS)
            raise Unauthenticated("a bearer token is required", self.challenge)
        for verifier in self._verifiers:
            try:
                principal = await verifier.verify(token)
            except Unauthenticated as exc:
                raise self._refuse(str(exc)) from None
            if principal is not None:
                return principal
        if self.open:  # a token no mode knows (OpenAI SDKs always send one): anonymous
            return Principal(ANONYMOUS, "none", label=ANONYMOUS)
        raise self._refuse("bearer token not accepted")

    async def aclose(self) -> None:
        for verifier in self._verifiers:
            await verifier.aclose()


def bearer_token(authorization: str | None) -> str | None:
    """The token of a ``Bearer`` Authorization header value; None for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def warn_email_entries(setting: str, entries: list[str], static_names: set[str]) -> list[str]:
    """E-mail entries that are not static key names match no caller since Entra callers are
    keyed by ``entra:<tid>/<oid>``: each is named in a start-up warning (and so grants nothing;
    an e-mail is not unique across tenants). Returns them."""
    stale = [e for e in entries if "@" in e and ":" not in e and e not in static_names]
    for entry in stale:
        log.warning(
            "%s entry %r is an e-mail: it matches no Entra caller and is ignored; Entra callers "
            "are named 'entra:<tenant-id>/<object-id>' (the log line 'entra caller ...' shows "
            "each one's key beside its e-mail)",
            setting,
            entry,
        )
    for entry in entries:  # keys are compared as the verifier writes them: lower-case ids
        if entry.lower().startswith(("entra:", "app:")) and entry != entry.lower():
            log.warning("%s entry %r matches no caller: Entra keys are lower-case", setting, entry)
    return stale


def build_auth(settings: Settings, challenge: str) -> CallerAuth:
    """The verifiers AUTH_MODES asks for; a mode missing its settings fails at start."""
    modes = settings.modes()
    if modes is None:
        log.warning("AUTH_MODES is not set: every caller is refused with 401")
        return CallerAuth(None, (), challenge)
    verifiers: list[Verifier] = []
    named = set(split(settings.auth_admin_callers))
    static_names: set[str] = set()
    if "static" in modes:
        from llmhub_gateway.auth.static_keys import StaticKeys

        if settings.auth_static_keys_file is None:
            raise ValueError("AUTH_MODES has 'static' but AUTH_STATIC_KEYS_FILE is not set")
        keys = StaticKeys.from_file(settings.auth_static_keys_file)
        static_names = set(keys.names())
        verifiers.append(keys)
    if "entra" in modes:
        from llmhub_gateway.auth.entra import EntraVerifier

        domains = dict(
            pair.split("=", 1) for pair in split(settings.auth_entra_domains) if "=" in pair
        )
        for setting in ("AUTH_ADMIN_CALLERS", "AUTH_NAMED_CALLERS"):
            entries = split(getattr(settings, setting.lower()))
            warn_email_entries(setting, entries, static_names)
        verifiers.append(
            EntraVerifier(
                authority=settings.auth_entra_authority,
                tenants=split(settings.auth_entra_tenants),
                audiences=split(settings.auth_entra_audiences),
                domains=domains,
                named=named | set(split(settings.auth_named_callers)),
                leeway_s=settings.auth_entra_leeway_seconds,
            )
        )
    if "kubernetes" in modes:
        from llmhub_gateway.auth.kubernetes import ApiServer, KubernetesVerifier

        api = (
            ApiServer.from_kubeconfig(settings.auth_kubernetes_kubeconfig)
            if settings.auth_kubernetes_kubeconfig is not None
            else ApiServer.in_cluster()
        )
        verifiers.append(
            KubernetesVerifier(
                api,
                audience=settings.auth_kubernetes_audience,
                allowed=split(settings.auth_kubernetes_allowed),
            )
        )
    if "none" in modes:
        log.warning(
            "AUTH_MODES includes 'none': callers without a token are served as 'anonymous'; "
            "anyone who can reach the gateway spends the subscriptions"
        )
    return CallerAuth(modes, verifiers, challenge)
