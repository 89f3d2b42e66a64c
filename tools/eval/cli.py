"""`python -m tools eval clean|ner PATH` (`make eval-clean`, `make eval-ner`): quality over development data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

eval_app = typer.Typer(help="Quality benchmarks over development data.", no_args_is_help=True)


@eval_app.command("clean")
def eval_clean(
    path: Annotated[
        Path, typer.Argument(help="a news-pages or news-gold folder (index.jsonl), or the folder holding several")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    baseline: Annotated[bool, typer.Option(help="measure trafilatura's defaults on the same pages")] = True,
    crossval: Annotated[bool, typer.Option(help="fit the HTML tuning on k-1 folds of sites, score the rest")] = True,
    folds: Annotated[int, typer.Option(min=2, help="folds by site")] = 5,
) -> None:
    """Body P/R/F1 on 4-word shingles (cross-validated by site), title/author/date/source accuracy, pages per
    CPU-second against trafilatura — HTML and text mode, every development set."""
    from tools.eval.clean import run_clean_eval

    raise typer.Exit(run_clean_eval(path, as_json=as_json, baseline=baseline, folds=folds, crossval=crossval))


@eval_app.command("ner")
def eval_ner(
    path: Annotated[Path, typer.Argument(help="a CoNLL-2003 file, or the folder holding one")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    limit: Annotated[int | None, typer.Option(help="only the first N documents")] = None,
) -> None:
    """Document-level entity P/R/F1, overall and per type, bare model vs the news-tuned pipeline."""
    from tools.eval.ner import run_ner_eval

    raise typer.Exit(run_ner_eval(path, as_json=as_json, limit=limit))
