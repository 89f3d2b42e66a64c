"""The `newsflow` command: push, process, run the stack, read storage, inspect the DLQ, evaluate."""

from __future__ import annotations

import typer

from shared.cli.bench import bench
from shared.cli.dlq import dlq_app
from shared.cli.evaluate import eval_app
from shared.cli.pipeline import register_pipeline_commands
from shared.cli.status import status

app = typer.Typer(
    name="newsflow",
    help="News-article pipeline: ingest -> clean -> enrich -> publish over Redis Streams.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
register_pipeline_commands(app)
app.command()(bench)
app.add_typer(eval_app, name="eval")
app.add_typer(dlq_app, name="dlq")
app.command()(status)

try:  # the read side lands with the storage package
    from shared.cli.articles import articles_app, db_app
except ImportError:  # pragma: no cover
    pass
else:
    app.add_typer(articles_app, name="articles")
    app.add_typer(db_app, name="db")
