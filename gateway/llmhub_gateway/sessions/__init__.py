"""Conversation history storage: in memory for one replica, Redis for many."""

from llmhub_gateway.sessions.base import Session, SessionStore, StoreUnavailable

__all__ = ["Session", "SessionStore", "StoreUnavailable"]
