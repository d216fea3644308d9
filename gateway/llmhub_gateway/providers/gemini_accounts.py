"""The Gemini CLI's two account refusals, recognised by their exact sentences.

Since 2026-06-18 the CLI refuses personal Google accounts (free, Google AI Pro/Ultra): Google's
setup answers with an ineligible tier whose reason is "This client is no longer supported for
Gemini Code Assist for individuals". Code Assist Standard/Enterprise accounts still work, but
only with a Google Cloud project (``ProjectIdRequiredError``). Both end the CLI's auth step
(exit 41). Only the CLI's own full sentence counts, never a single word of its output, so an
unrelated failure that mentions "project" or "account" is not mistaken for either.
"""

from __future__ import annotations

from llmhub_gateway.providers.base import (
    ProviderAccountUnsupported,
    ProviderAuthError,
    ProviderProjectRequired,
)

ACCOUNT_UNSUPPORTED = "This client is no longer supported for Gemini Code Assist for individuals"
PROJECT_REQUIRED = (
    "This account requires setting the GOOGLE_CLOUD_PROJECT or GOOGLE_CLOUD_PROJECT_ID env var"
)
UNSUPPORTED_HELP = (
    "gemini: Google no longer serves this account through the Gemini CLI (personal and Google "
    "AI Pro/Ultra accounts are refused since 2026-06-18). Sign the CLI in with a Gemini Code "
    "Assist Standard or Enterprise account, push its oauth_creds.json (llm-mcp-hub token push "
    "gemini) and set spec.gemini.projectId on the LLMProvider."
)
PROJECT_HELP = (
    "gemini: this Gemini Code Assist account needs a Google Cloud project. Set "
    "spec.gemini.projectId on the LLMProvider (or GOOGLE_CLOUD_PROJECT on the gateway) to the "
    "project the licence belongs to."
)


def account_refusal(text: str) -> ProviderAuthError | None:
    """The matching error when ``text`` carries one of the CLI's refusal sentences."""
    if ACCOUNT_UNSUPPORTED in text:
        return ProviderAccountUnsupported(UNSUPPORTED_HELP)
    if PROJECT_REQUIRED in text:
        return ProviderProjectRequired(PROJECT_HELP)
    return None
