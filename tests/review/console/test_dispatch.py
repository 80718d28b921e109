"""The `/agent` dispatcher's table and its help text say the same. Pure: no stack needed."""

from __future__ import annotations

import re

from review.console.dispatch import COMMANDS, HELP, Access

# The subcommand each help line starts with: "• `name ...`".
HELP_LINE = re.compile(r"^• `(?P<name>[a-z-]+)", flags=re.MULTILINE)


def test_every_subcommand_is_in_the_help_and_every_help_line_has_a_handler() -> None:
    described = set(HELP_LINE.findall(HELP))
    assert described - {"help"} <= set(COMMANDS)
    assert all(f"`{name}" in HELP for name in COMMANDS)


def test_the_help_marks_what_needs_an_admin_as_the_table_does() -> None:
    """A line marked _(admins)_ is a command that checks admins; the others let anyone
    of the workspace run them (`digest` and `timezone` explain their split)."""
    for line in HELP.splitlines():
        found = HELP_LINE.match(line)
        if found is None or found["name"] == "help":
            continue
        access = COMMANDS[found["name"]].access
        if line.endswith("_(admins)_"):
            assert access is not Access.MEMBER, line
        elif "admins" not in line:
            assert access is Access.MEMBER, line
