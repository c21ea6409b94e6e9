"""The one exception type for problems a user can fix; the CLI prints it as a single line, without a traceback."""


class SeglabError(Exception):
    """Bad input or environment: the message says what is wrong and how to fix it."""
