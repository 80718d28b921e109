"""Moved to `testbed.tiny_model` (the guardrails benchmark uses it too); kept so existing
imports work."""

from testbed.tiny_model import build_tiny_classifier

__all__ = ["build_tiny_classifier"]
