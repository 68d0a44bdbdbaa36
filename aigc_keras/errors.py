"""The one exception type a user is meant to read: the CLI prints it as a single line."""


class AigcError(Exception):
    """A user-facing error (bad input, missing file, wrong shape) with a readable message."""

    exit_code = 1


class Interrupted(AigcError):
    """The user stopped the command (Ctrl-C); the message says how to go on."""

    exit_code = 130


def reason(error: BaseException) -> str:
    """The first line of an exception's message (or its type): what a one-line error can quote."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
