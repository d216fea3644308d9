"""The llm-mcp-hub gateway: REST, OpenAI-compatible and MCP front for Claude and Gemini."""
