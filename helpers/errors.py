"""The one exception a person using the helpers is meant to read, and the command lines' parser
that reports a bad flag the same way."""

import argparse


class StyleTransferError(ValueError):
    """Bad input or a failed run, explained in one line.

    The message names the file or value that was wrong and says what to do.
    The command line prints it without a traceback and exits with status 2.
    """


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (not the whole usage) and exit status 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")
