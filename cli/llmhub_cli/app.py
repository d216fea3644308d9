"""Argument parsing and dispatch; exit codes: 0 ok, 1 failed or token needs attention, 2 usage.

``status`` exits 1 when any LLMProvider is Degraded or Expired, any token is in warning or
expired or the gateway reports a refused account (cron jobs and CI gate on it) and 3 when the
cluster could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from llmhub_cli import status as status_cmd
from llmhub_cli.credentials import BadInput, Credential, read_claude, read_gemini
from llmhub_cli.vault import Connection, PushError, push

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CLUSTER = 0, 1, 2, 3
CA_BUNDLE_ENV = "LLMHUB_AZURE_CA_BUNDLE"
VERIFY_CHALLENGE_ENV = "LLMHUB_AZURE_VERIFY_CHALLENGE_RESOURCE"
_DURATION = re.compile(r"(\d+)([dhw])")
_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}

DESCRIPTION = """\
Admin tool for llm-mcp-hub: renew a subscription's credential in Azure Key Vault in one
command (the operator picks it up on its next refresh and rolls the gateway), and see every
LLMProvider's token health in the current kube context."""

PUSH_EPILOG = """\
Azure sign-in: DefaultAzureCredential (after `az login`, or a workload/managed identity); the
identity needs 'Key Vault Secrets Officer' (or a 'set' access policy) on the vault.
The value is never printed or logged. Tags written: kind, issued-at, pushed-by."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-mcp-hub", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    token = commands.add_parser(
        "token",
        help="manage the credentials in Key Vault",
        description="Manage the subscriptions' credentials in Azure Key Vault: "
        "`token push claude` and `token push gemini` write a new version.",
    )
    token_cmds = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    push_cmd = token_cmds.add_parser(
        "push",
        help="write a new credential version to Key Vault",
        description="Write a new version of a provider's credential to Key Vault.",
    )
    providers = push_cmd.add_subparsers(dest="provider", required=True, metavar="PROVIDER")

    claude = providers.add_parser(
        "claude",
        help="push the token printed by `claude setup-token`",
        description=(
            "Push a Claude subscription's OAuth token (the output of `claude setup-token`). "
            "Read from --file, else from stdin when piped, else from a prompt that does not "
            "echo. --from-claude-login reads ~/.claude/.credentials.json instead."
        ),
        epilog=PUSH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _vault_args(claude, default_secret="claude-oauth-token")
    source = claude.add_mutually_exclusive_group()
    source.add_argument("--file", type=Path, help="a file holding the token")
    source.add_argument(
        "--from-claude-login",
        action="store_true",
        help="use Claude Code's own login (~/.claude/.credentials.json; lives hours, not a year)",
    )

    gemini = providers.add_parser(
        "gemini",
        help="push the Gemini CLI's oauth_creds.json",
        description=(
            "Push the Gemini CLI's Google login (oauth_creds.json with a refresh token). Only "
            "Gemini Code Assist Standard/Enterprise accounts still work through the CLI; set "
            "spec.gemini.projectId on the LLMProvider to their Google Cloud project."
        ),
        epilog=PUSH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _vault_args(gemini, default_secret="gemini-oauth-creds")
    gemini.add_argument(
        "--file",
        type=Path,
        help="the creds file ('-' for stdin; default ~/.gemini/oauth_creds.json)",
    )

    st = commands.add_parser(
        "status",
        help=(
            "token health of the LLMProviders (exit 1 if any is Degraded or Expired, a token "
            "is in warning or expired, or an account is refused)"
        ),
        description=(
            "List the LLMProviders of the current kube context: provider, phase, token status, "
            "days left, last sync, last rotation, account and message. ACCOUNT is what the "
            "gateway last saw of the vendor account (the AccountUsable condition): ok, "
            "AccountUnsupported or ProjectRequired, '-' when not reported. Exits 1 when any "
            "LLMProvider is Degraded or Expired, any token is in warning or expired or any "
            "account is refused, 3 when the cluster cannot be read."
        ),
    )
    scope = st.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="all namespaces")
    st.add_argument("-o", "--output", choices=("table", "json"), default="table")
    st.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    return parser


def _vault_args(parser: argparse.ArgumentParser, *, default_secret: str) -> None:
    parser.add_argument("--vault-url", required=True, help="https://<vault>.vault.azure.net")
    parser.add_argument("--secret-name", default=default_secret, help="default: %(default)s")
    parser.add_argument(
        "--expires-in",
        default="365d",
        type=parse_duration,
        help="Key Vault 'expires' from now, e.g. 365d, 12w, 8h (default: 365d, what "
        "setup-token tokens live); a credential that carries an earlier expiry keeps it",
    )
    parser.add_argument("--pushed-by", help="the pushed-by tag (default: user@host)")
    parser.add_argument(
        "--ca-bundle",
        default=os.environ.get(CA_BUNDLE_ENV) or None,
        help=f"stand-in vaults only: a CA bundle to trust (env {CA_BUNDLE_ENV})",
    )
    parser.add_argument(
        "--no-verify-challenge-resource",
        action="store_true",
        default=os.environ.get(VERIFY_CHALLENGE_ENV, "").lower() in ("0", "false", "no"),
        help=f"stand-in vaults only: accept a challenge for a non-Azure host "
        f"(env {VERIFY_CHALLENGE_ENV}=false)",
    )


def parse_duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 365d, 12w or 8h")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "status":
        return _status(args)
    return _push(args)


def _push(args: argparse.Namespace) -> int:
    try:
        credential: Credential
        if args.provider == "claude":
            credential = read_claude(args.file, from_login=args.from_claude_login)
        else:
            credential = read_gemini(args.file)
    except BadInput as exc:
        print(f"llm-mcp-hub: bad input: {exc}", file=sys.stderr)
        return EXIT_USAGE
    now = datetime.now(UTC)
    expires_at = now + args.expires_in
    if credential.expires_at is not None and credential.expires_at < expires_at:
        expires_at = credential.expires_at
    if expires_at <= now:
        print("llm-mcp-hub: bad input: this credential has already expired", file=sys.stderr)
        return EXIT_USAGE
    conn = Connection(
        args.vault_url,
        ca_bundle=args.ca_bundle,
        verify_challenge_resource=not args.no_verify_challenge_resource,
    )
    try:
        pushed = push(
            conn,
            secret_name=args.secret_name,
            credential=credential,
            expires_at=expires_at,
            issued_at=now,
            pushed_by=args.pushed_by,
        )
    except PushError as exc:
        print(f"llm-mcp-hub: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if credential.note:
        print(f"note: {credential.note}", file=sys.stderr)
    print(
        f"pushed {credential.kind} to {args.secret_name} (version {pushed.version}), "
        f"expires {pushed.expires_at:%Y-%m-%d %H:%M}Z; the operator applies it on its next "
        "refresh and rolls the gateway"
    )
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    try:
        rows = asyncio.run(status_cmd.fetch(args.namespace, args.all_namespaces, args.kubeconfig))
    except Exception as exc:  # kubeconfig missing, API unreachable, forbidden, no CRD
        why = getattr(exc, "reason", None) or getattr(exc, "status", None) or exc
        print(f"llm-mcp-hub: cannot list LLMProviders: {why}", file=sys.stderr)
        return EXIT_CLUSTER
    if args.output == "json":
        print(status_cmd.render_json(rows))
    else:
        print(status_cmd.render_table(rows, with_namespace=args.all_namespaces))
    return EXIT_FAILED if status_cmd.needs_attention(rows) else EXIT_OK
