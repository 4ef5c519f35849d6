"""Errors that the CLI turns into one line on stderr."""


class UsageError(ValueError):
    """Bad input from the user: a name, number, file or flag (exit code 2)."""


class RunError(RuntimeError):
    """A failure after a valid start, e.g. a download that fails (exit code 1)."""


def choices_message(what, value, valid):
    """`unknown model 'foo'; valid choices: a, b, c`."""
    return f"unknown {what} {value!r}; valid choices: {', '.join(valid)}"
