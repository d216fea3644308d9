"""The llm-mcp-hub operator: Key Vault → Secret per LLMProvider → gateway rollout → status."""
