"""``llm-mcp-hub``: the admin's command line (token renewal, LLMProvider status); in no image."""
