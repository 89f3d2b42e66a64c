"""How the CLI fails: one line on stderr and an exit status, never a traceback.

Exit status 2 is for what the caller can fix — a bad argument or option, an id that names nothing, a missing
file, a dependency (Redis, storage) that cannot be reached; 1 is for "done, but not everything" (a push with
unreadable files, a stuck pipeline) and for a failure of newsflow's own.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

EXIT_USAGE = 2
EXIT_INCOMPLETE = 1

# soft_wrap: off a terminal rich would fold a long message at 80 columns, and it must stay one line.
stderr = Console(stderr=True, soft_wrap=True, highlight=False)


def one_line(text: str) -> str:
    """`text` with every run of whitespace (newlines included) as one space."""
    return " ".join(text.split())


def report(message: str) -> None:
    """Print one line on stderr (red on a terminal); the message is plain text, never rich markup."""
    stderr.print(f"[red]{escape(one_line(message))}[/red]")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Report `message` and exit with `code` (default 2: the caller can fix it)."""
    report(message)
    raise typer.Exit(code)
