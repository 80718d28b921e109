"""Errors that end a process at start, with a message written for the operator."""

from __future__ import annotations


class StartupError(Exception):
    """The process cannot start; the message says what to do."""
