"""`python -m tools bench|eval`: the development tools' command line (`make bench`, `make eval-clean`, ...)."""

from __future__ import annotations

import typer

from tools.bench.cli import bench, bench_api, bench_warc
from tools.eval.cli import eval_app

app = typer.Typer(
    name="tools",
    help="newsflow development tools: benchmarks and quality evaluations (run from a source checkout).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command()(bench)
app.command("bench-warc")(bench_warc)
app.command("bench-api")(bench_api)
app.add_typer(eval_app, name="eval")

if __name__ == "__main__":
    app(prog_name="python -m tools")
