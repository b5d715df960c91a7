"""The one exception a person using the helpers is meant to read."""


class StyleTransferError(ValueError):
    """Bad input or a failed run, explained in one line.

    The message names the file or value that was wrong and says what to do.
    The command line prints it without a traceback and exits with status 2.
    """
