"""Moved to `testbed.stack` (benchmarks use it too); kept so existing imports work."""

from testbed.stack import Stack, free_port, product_env, start_stack

__all__ = ["Stack", "free_port", "product_env", "start_stack"]
