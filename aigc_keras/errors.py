"""The one exception type a user is meant to read: the CLI prints it as a single line."""


class AigcError(Exception):
    """A user-facing error (bad input, missing file, wrong shape) with a readable message."""
