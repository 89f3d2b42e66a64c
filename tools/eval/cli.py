"""`python -m tools eval clean|ner PATH` (`make eval-clean`, `make eval-ner`): quality over development data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

eval_app = typer.Typer(help="Quality benchmarks over development data.", no_args_is_help=True)


@eval_app.command("clean")
def eval_clean(
    path: Annotated[Path, typer.Argument(help="a news-pages folder (index.jsonl, HTML, reference text)")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Body P/R/F1 on 4-word shingles, title/author/date/source accuracy, pages/s — HTML and text mode."""
    from tools.eval.clean import run_clean_eval

    raise typer.Exit(run_clean_eval(path, as_json=as_json))


@eval_app.command("ner")
def eval_ner(
    path: Annotated[Path, typer.Argument(help="a CoNLL-2003 file, or the folder holding one")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    limit: Annotated[int | None, typer.Option(help="only the first N documents")] = None,
) -> None:
    """Document-level entity P/R/F1, overall and per type, bare model vs the news-tuned pipeline."""
    from tools.eval.ner import run_ner_eval

    raise typer.Exit(run_ner_eval(path, as_json=as_json, limit=limit))
