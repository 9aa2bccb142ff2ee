"""The error type for mistakes a user can fix (a bad path, a malformed file, an unknown name).

Library code raises `LlavaCotError` with a message that says what to do; the CLI prints it on one
line and exits with code 2. Anything else escaping to the CLI is a bug and keeps its traceback.
"""


class LlavaCotError(Exception):
    """A user-caused error; the message is shown as-is, on one line."""
