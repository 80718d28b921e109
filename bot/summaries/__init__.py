"""Catch-up summaries of threads and channels, on request and as scheduled digests."""
