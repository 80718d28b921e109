"""Benchmarks of the running product, each a script that sets up everything it needs."""
