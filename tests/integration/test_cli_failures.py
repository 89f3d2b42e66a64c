"""Every `newsflow` command, given what it cannot use, fails cleanly: exit status 2, one line on stderr, no traceback.

The table below holds, for each command, the bad inputs an operator meets: a missing or malformed argument, an id
that names nothing, a value of the wrong type or out of range, a file that is not there, a storage URL or a Redis
that cannot be used. A test checks that every command of the CLI appears in it, so a new command needs its rows.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from newsflow.cli import app, main
from shared.settings import get_settings
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"

# (command words, arguments): each must exit 2 with one line on stderr. `{tmp}` is a fresh directory, `{db}` a
# migrated SQLite file in it; `@unreachable` runs the row against a Redis that does not answer, `@env:NAME=VALUE`
# with that setting.
CASES: list[tuple[str, list[str]]] = [
    # push
    ("push", []),
    ("push", ["{tmp}/no-such-file.txt"]),
    ("push", ["{tmp}/no-such-dir/"]),
    ("push", ["--checkpoint", "{tmp}/c.json", "{tmp}/a.txt"]),
    ("push", ["--redis-url", "not-a-url", "{tmp}/a.txt"]),
    ("push", ["--redis-url", UNREACHABLE_REDIS, "{tmp}/a.txt"]),
    # process
    ("process", []),
    ("process", ["{tmp}/no-such-file.txt"]),
    ("process", ["--stages", "publish", "{tmp}/a.txt"]),
    ("process", ["--batch-size", "0", "{tmp}/a.txt"]),
    ("process", ["--batch-size", "many", "{tmp}/a.txt"]),
    # serve, up, trim
    ("serve", []),
    ("serve", ["bogus"]),
    ("up", ["--enrich-replicas", "0"]),
    ("up", ["--enrich-replicas", "two"]),
    ("trim", ["extra"]),
    ("trim", ["@unreachable"]),
    # status
    ("status", ["--interval", "0"]),
    ("status", ["--interval", "soon"]),
    ("status", ["--stuck-after", "-5"]),
    ("status", ["--bogus"]),
    ("status", ["@unreachable"]),
    ("status", ["@env:NEWSFLOW_BATCH_SIZE=abc"]),
    ("status", ["@env:NEWSFLOW_LOG_FORMAT=xml"]),
    # dlq
    ("dlq list", ["--limit", "0"]),
    ("dlq list", ["--limit", "x"]),
    ("dlq list", ["--stage", "bogus"]),
    ("dlq list", ["@unreachable"]),
    ("dlq show", []),
    ("dlq show", ["abc"]),
    ("dlq show", ["1732631000000"]),
    ("dlq show", ["1-0"]),
    ("dlq show", ["1-0", "@unreachable"]),
    ("dlq replay", []),
    ("dlq replay", ["abc"]),
    ("dlq replay", ["1-0"]),
    ("dlq replay", ["1-0", "--all"]),
    ("dlq replay", ["--all", "--stage", "bogus"]),
    ("dlq purge", ["--stage", "bogus"]),
    ("dlq purge", ["extra"]),
    ("dlq purge", ["--yes", "@unreachable"]),
    ("dlq export", ["--delete"]),
    ("dlq export", ["-o", "{tmp}/no-such-dir/dlq.jsonl"]),
    ("dlq export", ["--reason", "x", "--stage", "bogus"]),
    # articles
    ("articles list", ["--limit", "0", "--storage-url", "{db}"]),
    ("articles list", ["--since", "last tuesday", "--storage-url", "{db}"]),
    ("articles list", ["--content-type", "poem", "--storage-url", "{db}"]),
    ("articles list", ["--storage-url", "mysql://x/y"]),
    ("articles list", ["--storage-url", "sqlite:///{tmp}/no-such-dir/x.db"]),
    ("articles show", []),
    ("articles show", ["no-such-article", "--storage-url", "{db}"]),
    ("articles show", ["x", "--storage-url", "mysql://x/y"]),
    ("articles show", ["x", "--storage-url", "sqlite:///{tmp}/missing.db"]),
    ("articles search", []),
    ("articles search", ["putin", "--limit", "0", "--storage-url", "{db}"]),
    ("articles export", ["--format", "xml", "--storage-url", "{db}"]),
    ("articles export", ["--until", "someday", "--storage-url", "{db}"]),
    ("articles export", ["-o", "/proc/no-such/x.jsonl", "--storage-url", "{db}"]),
    ("articles count", ["--since", "yesterday-ish", "--storage-url", "{db}"]),
    ("articles count", ["--storage-url", "postgresql://nobody@127.0.0.1:1/none"]),
    # db
    ("db migrate", ["--storage-url", "mysql://x/y"]),
    ("db migrate", ["--storage-url", "postgresql://nobody@127.0.0.1:1/none"]),
    # sources
    ("sources add", []),
    ("sources add", ["not a url", "--storage-url", "{db}"]),
    ("sources add", ["ftp://example.com/feed.xml", "--storage-url", "{db}"]),
    ("sources add", ["https://example.com/rss.xml", "--interval", "0", "--storage-url", "{db}"]),
    ("sources list", ["--storage-url", "mysql://x/y"]),
    ("sources list", ["--storage-url", "sqlite:///{tmp}/missing.db"]),
    ("sources remove", []),
    ("sources remove", ["no-such-source", "--storage-url", "{db}"]),
]


# Odd input that is still valid: answered (exit 0 or 1), never a traceback.
ODD_BUT_VALID: list[list[str]] = [
    ["articles", "search", '"unbalanced', "--storage-url", "{db}"],
    ["articles", "search", "AND OR NOT", "--storage-url", "{db}"],
    ["articles", "search", "NEAR(", "--storage-url", "{db}"],
    ["articles", "list", "--entity", "%_'\\", "--storage-url", "{db}"],
    ["db", "migrate", "--storage-url", "sqlite:///{tmp}/new-dir/x.db"],  # migrate makes the database
    ["dlq", "list", "--reason", "no such reason"],
    ["dlq", "purge", "--reason", "no such reason", "--yes"],
    ["dlq", "export", "-o", "{tmp}/empty.jsonl"],
]


def leaf_commands(group: typer.Typer) -> set[str]:
    """Every runnable command of the CLI, as the words that name it (`dlq show`)."""
    import typer.main

    command = typer.main.get_command(group)
    found: set[str] = set()

    def walk(node: object, words: tuple[str, ...]) -> None:
        children = getattr(node, "commands", None)
        if children is None:
            found.add(" ".join(words))
            return
        for name, child in children.items():
            walk(child, (*words, name))

    walk(command, ())
    return found


def test_every_command_has_bad_input_cases() -> None:
    assert leaf_commands(app) == {words for words, _ in CASES}


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str, tmp_path: Path) -> Iterator[Path]:
    """The CLI in this process on a private prefix, a temporary directory and a migrated SQLite file."""
    monkeypatch.setenv("NEWSFLOW_REDIS_URL", redis_url)
    monkeypatch.setenv("NEWSFLOW_KEY_PREFIX", key_prefix)
    monkeypatch.setenv("NEWSFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NEWSFLOW_STORAGE_URL", f"sqlite:///{tmp_path}/default.db")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("A short article about nothing much at all, for the pipeline.\n")
    get_settings.cache_clear()
    assert _run(["db", "migrate", "--storage-url", f"sqlite:///{tmp_path}/newsflow.db"])[0] == 0
    yield tmp_path
    get_settings.cache_clear()


def expand(arguments: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)).replace("{db}", f"sqlite:///{tmp}/newsflow.db") for a in arguments]


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        main(argv)
    except SystemExit as exit:
        return int(exit.code or 0), ""
    return 0, ""


@pytest.mark.parametrize(("words", "arguments"), CASES, ids=[f"{w} {' '.join(a)}".strip() for w, a in CASES])
def test_a_bad_input_is_one_line_on_stderr_and_exit_2(
    words: str, arguments: list[str], cli_env: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if "@unreachable" in arguments:
        monkeypatch.setenv("NEWSFLOW_REDIS_URL", UNREACHABLE_REDIS)
    for setting in [a.removeprefix("@env:") for a in arguments if a.startswith("@env:")]:
        monkeypatch.setenv(*setting.split("=", 1))
    arguments = [a for a in arguments if not a.startswith("@")]
    get_settings.cache_clear()
    argv = [*words.split(), *expand(arguments, cli_env)]
    capfd.readouterr()
    code, _ = _run(argv)
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in out + err, err
    assert len(lines) == 1, f"stderr of `newsflow {' '.join(argv)}`:\n{err}"
    assert code == 2, f"`newsflow {' '.join(argv)}` exited {code}: {err}"


@pytest.mark.parametrize("arguments", ODD_BUT_VALID, ids=[" ".join(a) for a in ODD_BUT_VALID])
def test_odd_but_valid_input_is_answered_without_a_traceback(
    arguments: list[str], cli_env: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = expand(arguments, cli_env)
    capfd.readouterr()
    code, _ = _run(argv)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err
    assert code in (0, 1), f"`newsflow {' '.join(argv)}` exited {code}: {err}"


INSTALLED = [
    ["dlq", "show", "abc"],
    ["dlq", "replay", "abc"],
    ["articles", "show", "nope"],
    ["articles", "count", "--storage-url", "postgresql://nobody@127.0.0.1:1/none"],  # the pool's own warnings too
]


@pytest.mark.parametrize("argv", INSTALLED, ids=[" ".join(a) for a in INSTALLED])
def test_the_installed_command_fails_the_same_way(argv: list[str], tmp_path: Path, redis_url: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "NEWSFLOW_REDIS_URL": redis_url, "NEWSFLOW_KEY_PREFIX": "nftest-cli-none",
           "NEWSFLOW_STORAGE_URL": f"sqlite:///{tmp_path}/x.db", "HOME": str(tmp_path)}
    run = subprocess.run([str(Path(sys.executable).parent / "newsflow"), *argv], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
