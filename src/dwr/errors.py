"""The one error type for bad input.

Library code raises :class:`DwrError` with a message that names the problem and the valid
choices; the CLI turns it into one line on stderr and exit code 2.
"""

from __future__ import annotations

#: How a DataLoader worker's exception reaches the main process (torch's ExceptionWrapper):
#: ``Caught DwrError in DataLoader worker process 0.\nOriginal Traceback ...``.
_WORKER_PREFIX = "Caught DwrError in "
_WORKER_LAST_LINE = "DwrError: "


class DwrError(ValueError):
    """Bad input from a user: a wrong name, a malformed list, a missing or corrupted file.

    A DwrError raised in a DataLoader worker is re-raised by torch in the main process as
    ``DwrError("Caught DwrError in DataLoader worker ... Original Traceback ...")``; that
    message is cut back to the worker's own message, so it stays one clean line.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str) and args[0].startswith(_WORKER_PREFIX):
            text = args[0].rstrip()
            if _WORKER_LAST_LINE in text:
                args = (text.rpartition(_WORKER_LAST_LINE)[2],)
        super().__init__(*args)


class RunInUseError(DwrError):
    """Another process holds the lock of this run's directory (it is training it now)."""


class DwrWarning(UserWarning):
    """Something the user should know that is not an error (e.g. an unverified checkpoint);
    the CLI prints it as one ``dwr: warning: ...`` line."""
