"""The one exception type that reaches users as a one-line message.

Library code raises :class:`UsageError` for anything the user can fix (a bad
argument, a missing folder, a checkpoint from another config); the CLI prints
it as ``error: ...`` and exits with status 2, without a traceback.
"""


class UsageError(Exception):
    """A problem with the user's input, explained in one line."""
