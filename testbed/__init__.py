"""Set-up shared by the tests and the benchmarks: the product's processes started as an
operator starts them, and a person acting in the emulated Slack workspace.

Lives outside `tests/` so that `bench/` can use it without importing the test suite.
"""
