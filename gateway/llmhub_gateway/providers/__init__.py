"""Provider adapters: one small interface (base.py), one module per LLM backend."""
