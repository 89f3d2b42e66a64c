"""The `newsflow` command: push, process, run the stack, read storage, inspect the DLQ and the pipeline's status."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

# typer (0.2x) runs on a click of its own, vendored: its usage errors are these classes, not the `click` package's.
from typer._click import exceptions as click_exceptions

from newsflow.cli.articles import articles_app, db_app
from newsflow.cli.dlq import dlq_app
from newsflow.cli.errors import EXIT_INCOMPLETE, EXIT_USAGE, report
from newsflow.cli.pipeline import register_pipeline_commands
from newsflow.cli.sources import sources_app
from newsflow.cli.status import status
from shared.errors import ConfigurationError

app = typer.Typer(
    name="newsflow",
    help="News-article pipeline: (fetch ->) ingest -> clean -> enrich -> publish over Redis Streams.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
register_pipeline_commands(app)
app.add_typer(dlq_app, name="dlq")
app.command()(status)
app.add_typer(articles_app, name="articles")
app.add_typer(db_app, name="db")
app.add_typer(sources_app, name="sources")


def main(argv: list[str] | None = None) -> None:
    """The `newsflow` command: whatever goes wrong is one line on stderr and an exit status (see cli/errors.py)."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="newsflow", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as exc:
        # `newsflow dlq` alone: its help, as a request for it (typer's rich help is printed as it is formatted).
        if exc.format_message().strip():
            typer.echo(exc.format_message())
        sys.exit(EXIT_USAGE)
    except click_exceptions.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx is not None else "newsflow"
        report(f"{path}: {exc.format_message()} (see {path} --help)")
        sys.exit(EXIT_USAGE)
    except typer.Abort:
        report("aborted")
        sys.exit(EXIT_INCOMPLETE)
    except click_exceptions.ClickException as exc:
        report(exc.format_message())
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        if exc.title != "Settings":
            report(f"newsflow failed unexpectedly: {exc}")
            sys.exit(EXIT_INCOMPLETE)
        report(f"bad configuration: {settings_problems(exc)}")
        sys.exit(EXIT_USAGE)
    except ConfigurationError as exc:
        report(str(exc))
        sys.exit(EXIT_USAGE)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        report(f"cannot reach Redis at {_redis_where()}: {type(exc).__name__}: {exc}")
        sys.exit(EXIT_USAGE)
    except RedisError as exc:
        report(f"Redis at {_redis_where()} refused: {type(exc).__name__}: {exc}")
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        report(f"{type(exc).__name__}: {exc}")
        sys.exit(EXIT_USAGE)
    except Exception as exc:
        report(f"newsflow failed unexpectedly: {type(exc).__name__}: {exc}")
        sys.exit(EXIT_INCOMPLETE)
    sys.exit(code if isinstance(code, int) else 0)


def settings_problems(exc: ValidationError) -> str:
    """`NEWSFLOW_BATCH_SIZE: Input should be a valid integer (got 'abc')` for each bad setting."""
    return "; ".join(
        f"NEWSFLOW_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']} (got {error['input']!r})"
        for error in exc.errors()
    )


def _redis_where() -> str:
    from shared.settings import get_settings, redact_url

    return redact_url(get_settings().redis_url)
