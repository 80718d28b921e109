"""The kernel: database access, settings, the LLM client, the tool protocol and the types
every other package shares. It imports nothing from bot, connectors, rag, guardrails,
review, sandbox or testbed (tests/test_layers.py checks)."""
