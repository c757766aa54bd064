"""The error every layer raises for an unusable flag value."""


class FlagError(Exception):
    """A flag value that parsed but is not valid (reported as one line, exit 2)."""
