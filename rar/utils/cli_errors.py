"""Bad input → one ``error:`` line and exit status 2, at the scripts' edge.

Code in ``rar/`` raises ``ValueError``/``FileNotFoundError``/``FileExistsError``/``KeyError`` with a
message that names what was expected and the file; a script wraps its work in
:func:`one_line_errors` so the user sees that message alone, not a traceback. Any other exception
is a bug and keeps its traceback. An error raised *because of* a bad input (Hydra's
``InstantiationException`` around a ``_target_``'s ``ValueError``) is reported as that input error.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

BAD_INPUT = (ValueError, FileNotFoundError, FileExistsError, KeyError)
BAD_INPUT_EXIT = 2


def input_error(error: BaseException) -> BaseException | None:
    """``error`` or the first of its causes that is a bad-input error, else None."""
    while error is not None:
        if isinstance(error, BAD_INPUT):
            return error
        error = error.__cause__
    return None


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn a bad-input error into ``error: <message>`` on stderr and ``SystemExit(2)``."""
    try:
        yield
    except Exception as error:
        cause = input_error(error)
        if cause is None:
            raise
        message = cause.args[0] if isinstance(cause, KeyError) and cause.args else str(cause)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(BAD_INPUT_EXIT) from None
