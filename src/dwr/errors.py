"""The one error type for bad input.

Library code raises :class:`DwrError` with a message that names the problem and the valid
choices; the CLI turns it into one line on stderr and exit code 2.
"""

from __future__ import annotations


class DwrError(ValueError):
    """Bad input from a user: a wrong name, a malformed list, a missing or corrupted file."""
