"""Reading files, directories and JSON lines for push/process."""

from __future__ import annotations

from pathlib import Path

from newsflow.inputs import InputError, RawInput, read_inputs


def test_files_directories_and_json_lines_in_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "one.txt").write_text("Plain text")
    (tmp_path / "b" / "two.html").write_text("<p>x</p>")
    (tmp_path / "b" / "notes.md").write_text("ignored in a directory walk")
    jsonl = tmp_path / "batch.jsonl"
    jsonl.write_text('{"id": "j1", "text": "a"}\n\nnot json\n[1]\n{"id": "j2", "html": "<p>b</p>"}\n')
    results = list(read_inputs([str(tmp_path / "b"), str(jsonl)]))
    raws = [r for r in results if isinstance(r, RawInput)]
    errors = [r for r in results if isinstance(r, InputError)]
    assert [r.data.get("id") for r in raws] == ["one", "two", "j1", "j2"]
    assert raws[0].data == {"id": "one", "text": "Plain text"}
    assert raws[1].data == {"id": "two", "html": "<p>x</p>"}
    assert [e.where for e in errors] == [f"{jsonl}:3", f"{jsonl}:4"]


def test_missing_and_unsupported_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    results = list(read_inputs([str(tmp_path / "nope.txt"), str(tmp_path / "x.pdf")]))
    assert all(isinstance(r, InputError) for r in results)
    assert "unsupported" in results[1].error  # type: ignore[union-attr]


def test_json_file_with_a_list_and_cp1252_text(tmp_path: Path) -> None:
    (tmp_path / "many.json").write_text('[{"text": "a"}, {"text": "b"}]')
    (tmp_path / "old.txt").write_bytes("caf\xe9 d\x92 news".encode("latin-1"))
    results = list(read_inputs([str(tmp_path / "many.json"), str(tmp_path / "old.txt")]))
    assert [r.data for r in results if isinstance(r, RawInput)][:2] == [{"text": "a"}, {"text": "b"}]
    assert results[2].data["text"].startswith("café")  # type: ignore[union-attr]
