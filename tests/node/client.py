"""The client the real-node tier runs INSIDE a pod (``kubectl exec -i client -- python - ARGS``,
this file on stdin): it reaches the gateway through its Service's DNS name with httpx (REST), the
official openai client and the official mcp client, and prints one JSON object per call.

Usage: ``python - BASE_URL rest|openai|mcp|session PROMPT [SESSION_ID]`` (``session``: GET the
session, PROMPT unused). Stdlib + what the gateway image holds + openai (added by the client image).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

MODEL = "claude-sonnet-4-5-20250929"


def rest(base: str, prompt: str, session_id: str | None) -> dict[str, Any]:
    import httpx

    body: dict[str, Any] = {"provider": "claude", "prompt": prompt}
    if session_id:
        body["session_id"] = session_id
    reply = httpx.post(f"{base}/v1/chat", json=body, timeout=60)
    if reply.status_code != 200:
        raise SystemExit(f"POST /v1/chat: {reply.status_code} {reply.text[:2000]}")
    return dict(reply.json())


def session(base: str, session_id: str) -> dict[str, Any]:
    import httpx

    reply = httpx.get(f"{base}/v1/sessions/{session_id}", timeout=30)
    if reply.status_code != 200:
        raise SystemExit(f"GET /v1/sessions: {reply.status_code} {reply.text[:2000]}")
    return dict(reply.json())


def openai_chat(base: str, prompt: str) -> dict[str, Any]:
    import openai

    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=60)
    models = [m.id for m in client.models.list()]
    done = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}]
    )
    return {"models": models, "text": done.choices[0].message.content, "model": done.model}


async def mcp_chat(base: str, prompt: str) -> dict[str, Any]:
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        streamable_http_client(f"{base}/mcp") as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        result = await client.call_tool("claude_chat", {"prompt": prompt})
        if result.is_error:
            return {"tools": tools, "error": result.content[0].model_dump()}
        if result.structured_content is not None:
            out = result.structured_content.get("result", result.structured_content)
        else:
            out = json.loads(getattr(result.content[0], "text", "{}"))
        return {"tools": tools, **out}


def main(argv: list[str]) -> None:
    base, kind, prompt, *rest_args = argv
    session_id = rest_args[0] if rest_args else None
    if kind == "rest":
        out = rest(base, prompt, session_id)
    elif kind == "session":
        out = session(base, prompt)
    elif kind == "openai":
        out = openai_chat(base, prompt)
    elif kind == "mcp":
        out = asyncio.run(mcp_chat(base, prompt))
    else:
        raise SystemExit(f"unknown call {kind}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
