"""Per-caller and per-subscription limits and usage counters (Redis for many replicas)."""
