"""LLMGateway: one tenant's gateway, rendered and kept converged by the operator."""
