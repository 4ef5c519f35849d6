"""What a user's path names, found without opening it.

Every reader of a file the user names (`--config`, `--space`, `--backbone`,
`--weights`, `csv:PATH`) checks it here first, so a directory, a FIFO or a
device gets a message that says what it is instead of "not found", and a
FIFO is never opened (opening one for reading blocks until a writer comes).
"""

import os
import stat

from dlrecipes.errors import UsageError

# (test, what the path is), for everything but a regular file.
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a device (character special file)"),
    (stat.S_ISBLK, "a device (block special file)"),
    (stat.S_ISSOCK, "a socket"),
)


def path_kind(path):
    """What `path` names, from `os.stat` (symbolic links followed).

    Args:
        path: a path (str, bytes or path-like).

    Returns:
        `"a file"` for a regular file, `None` where nothing is there (a
        broken symbolic link included), else a phrase such as
        `"a directory"`, `"a FIFO (named pipe)"` or
        `"a device (character special file)"`.

    Raises:
        UsageError: the path cannot be examined (no permission to search
            a folder on it, a name too long ...).
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as e:  # ValueError: an embedded NUL
        reason = getattr(e, "strerror", None) or str(e)
        raise UsageError(f"cannot examine {os.fsdecode(path)!r}: {reason}") \
            from None
    if stat.S_ISREG(mode):
        return "a file"
    return next((kind for test, kind in _KINDS if test(mode)),
                "a special file")


def check_file(path, flag, expected=None):
    """Raise a one-line `UsageError` unless `path` is an existing regular
    file; never opens it.

    Args:
        path: the path the user gave.
        flag: the option that named it, e.g. `"--config"`; starts the
            message and names the `Received:` field.
        expected: what the option takes, for the message (e.g.
            `"imagenet, none or a weights file"`), or None.

    Raises:
        UsageError: e.g. `--space: '/dev/zero' is a device (character
            special file), not a file; expected a TOML or JSON file.
            Received: space='/dev/zero'`.

    Example:

    >>> check_file(args.space, "--space", "a TOML or JSON file")
    """
    try:
        kind = path_kind(path)
    except UsageError as e:
        raise UsageError(f"{flag}: {e}") from None
    if kind == "a file":
        return
    shown = os.fsdecode(path)
    if kind is None:
        problem = f"file not found: {shown!r}"
    else:
        problem = f"{shown!r} is {kind}, not a file"
    hint = f"; expected {expected}" if expected else ""
    field = flag.lstrip("-").replace("-", "_")
    raise UsageError(f"{flag}: {problem}{hint}. Received: "
                     f"{field}={shown!r}")
