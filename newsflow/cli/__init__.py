"""The `newsflow` command: push, process, run the stack, read storage, inspect the DLQ and the pipeline's status."""

from __future__ import annotations

import typer

from newsflow.cli.articles import articles_app, db_app
from newsflow.cli.dlq import dlq_app
from newsflow.cli.pipeline import register_pipeline_commands
from newsflow.cli.sources import sources_app
from newsflow.cli.status import status

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
