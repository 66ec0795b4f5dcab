"""The one error the `pfo` day-2 commands raise for the user: printed as is, exit status 1."""

from __future__ import annotations


class CliError(Exception):
    """A problem the user can fix; the message names what to change."""
