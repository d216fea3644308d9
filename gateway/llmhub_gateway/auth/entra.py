"""``entra`` mode: Microsoft Entra ID bearer JWTs, checked with PyJWT against the tenant's JWKS.

Only RS256 is accepted (``none`` and HS* are refused before any key is looked at, so a public
key can never serve as an HMAC secret). The issuer must be the v2 (``<authority>/<tid>/v2.0``)
or v1 (``https://sts.windows.net/<tid>/``) issuer of an allowed tenant; the audience one of
``AUTH_ENTRA_AUDIENCES`` (the App ID URI and the client-id GUID: v2 tokens carry the GUID).
Keys come from OpenID discovery at ``<authority>/<tid>/v2.0/.well-known/openid-configuration``
and are cached; an unknown ``kid`` refetches them (key rotation), at most once per
``refresh_interval_s`` so garbage tokens cannot hammer Entra.

Callers are keyed by what Entra never reassigns: ``entra:<tid>/<oid>`` for users and
``app:<tid>/<azp>`` for app-only tokens. An e-mail (``email``, ``preferred_username``,
``upn``) is neither unique across tenants nor immutable, so it only labels log lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any

import httpx
import jwt

from llmhub_gateway.auth.principal import OTHER, Principal
from llmhub_gateway.errors import Unauthenticated

log = logging.getLogger(__name__)
V1_ISSUER = "https://sts.windows.net/{tid}/"
ALGORITHMS = ["RS256"]
USER_PREFIX = "entra:"
APP_PREFIX = "app:"
SEEN_MAX = 4096


def is_app_only(claims: Mapping[str, Any]) -> bool:
    """Entra's documented tests: the ``idtyp`` optional claim (``app`` or ``user``) when the
    app registration asks for it; else an app-only token has no ``scp`` and its ``oid`` (the
    service principal) equals its ``sub``."""
    idtyp = claims.get("idtyp")
    if idtyp is not None:
        return str(idtyp).lower() == "app"
    oid, sub = claims.get("oid"), claims.get("sub")
    return "scp" not in claims and oid is not None and oid == sub


class EntraVerifier:
    mode = "entra"

    def __init__(
        self,
        *,
        authority: str,
        tenants: Collection[str],
        audiences: Collection[str],
        domains: Mapping[str, str] | None = None,
        named: Collection[str] = (),
        leeway_s: int = 60,
        refresh_interval_s: float = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if not tenants or not audiences:
            raise ValueError("entra mode needs AUTH_ENTRA_TENANTS and AUTH_ENTRA_AUDIENCES")
        self._authority = authority.rstrip("/")
        self._tenants = {t.lower() for t in tenants}
        self._audiences = list(audiences)
        self._domains = {d.lower(): t.lower() for d, t in (domains or {}).items()}
        self._named = set(named)
        self._logged: set[str] = set()
        self._leeway = leeway_s
        self._refresh_s = refresh_interval_s
        self._http = http or httpx.AsyncClient(timeout=10)
        self._keys: dict[str, dict[str, jwt.PyJWK]] = {}  # tenant -> kid -> key
        self._fetched: dict[str, float] = {}
        self._lock = asyncio.Lock()

    def issuers(self, tid: str) -> list[str]:
        return [f"{self._authority}/{tid}/v2.0", V1_ISSUER.format(tid=tid)]

    def _tenant_of(self, issuer: str) -> str | None:
        """The tenant an Entra-shaped issuer names, or None if the token is not Entra's."""
        for prefix, suffix in ((f"{self._authority}/", "/v2.0"), ("https://sts.windows.net/", "/")):
            if issuer.startswith(prefix) and issuer.endswith(suffix):
                tid = issuer[len(prefix) : len(issuer) - len(suffix)]
                if tid and "/" not in tid:
                    return tid.lower()
        return None

    async def verify(self, token: str) -> Principal | None:
        if token.count(".") != 2:
            return None
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        tid = self._tenant_of(str(unverified.get("iss", "")))
        if tid is None:
            return None  # not an Entra token: another mode may know it
        if tid not in self._tenants:
            raise Unauthenticated("token from a tenant that is not allowed")
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated("token algorithm not accepted (RS256 only)")
        key = await self._key(tid, str(header.get("kid", "")))
        if key is None:
            raise Unauthenticated("token signed with an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self._audiences,
                issuer=self.issuers(tid),
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token issued for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token issuer not accepted") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"token rejected: {type(exc).__name__}") from None
        if str(claims.get("tid", tid)).lower() != tid:
            raise Unauthenticated("token tenant does not match its issuer")
        return self._principal(claims, tid)

    def _principal(self, claims: Mapping[str, Any], tid: str) -> Principal:
        """Keyed by immutable ids: ``entra:<tid>/<oid>`` for a user, ``app:<tid>/<azp>`` for
        an app-only token. The e-mail is mutable and not unique across tenants: a label only."""
        scopes = tuple(str(claims.get("scp", "")).split()) + tuple(
            str(r) for r in claims.get("roles", []) or []
        )
        if is_app_only(claims):
            client = claims.get("azp") or claims.get("appid")
            if not client:
                raise Unauthenticated("app-only token names no client (azp/appid)")
            name, shown = f"{APP_PREFIX}{tid}/{str(client).lower()}", None
        else:
            oid = claims.get("oid")
            if not oid:
                raise Unauthenticated("user token names no object id (oid)")
            name, shown = f"{USER_PREFIX}{tid}/{str(oid).lower()}", self._email(claims, tid)
        self._seen(name, shown)
        label = name if name in self._named else OTHER
        return Principal(
            name, self.mode, label=label, scopes=scopes, subject=claims.get("oid"), display=shown
        )

    def _email(self, claims: Mapping[str, Any], tid: str) -> str | None:
        """The user's e-mail for logs; with AUTH_ENTRA_DOMAINS its domain must be the tenant's."""
        email = next(
            (str(claims[c]) for c in ("email", "preferred_username", "upn") if claims.get(c)),
            None,
        )
        if email is None or "@" not in email:
            return None
        email = email.lower()
        if self._domains and self._domains.get(email.rsplit("@", 1)[1]) != tid:
            raise Unauthenticated("the caller's e-mail domain does not belong to its tenant")
        return email

    def _seen(self, name: str, shown: str | None) -> None:
        """Log a caller's key beside its e-mail once per process: how operators find the key
        to put in AUTH_ADMIN_CALLERS or AUTH_NAMED_CALLERS."""
        if name in self._logged:
            return
        if len(self._logged) >= SEEN_MAX:
            self._logged.clear()
        self._logged.add(name)
        log.info("entra caller %s (%s)", name, shown or "no e-mail claim")

    async def _key(self, tid: str, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(tid, {}).get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(tid, {}).get(kid)
            recent = time.monotonic() - self._fetched.get(tid, -1e9) < self._refresh_s
            if key is None and not recent:
                await self._refresh(tid)
                key = self._keys.get(tid, {}).get(kid)
        return key

    async def _refresh(self, tid: str) -> None:
        self._fetched[tid] = time.monotonic()
        discovery = f"{self._authority}/{tid}/v2.0/.well-known/openid-configuration"
        try:
            config = (await self._http.get(discovery)).raise_for_status().json()
            jwks = (await self._http.get(str(config["jwks_uri"]))).raise_for_status().json()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("could not fetch Entra signing keys for tenant %s: %s", tid, exc)
            return
        keys: dict[str, jwt.PyJWK] = {}
        for entry in jwks.get("keys", []):
            try:
                if entry.get("kty") == "RSA" and entry.get("kid"):
                    keys[str(entry["kid"])] = jwt.PyJWK(entry, algorithm="RS256")
            except jwt.PyJWTError:
                continue
        self._keys[tid] = keys

    async def aclose(self) -> None:
        await self._http.aclose()
