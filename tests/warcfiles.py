"""WARC files for tests, written with warcio (the reference writer) record by record."""

from __future__ import annotations

import io
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

WARC_DATE = "2024-05-01T10:00:00Z"


class WarcBuilder:
    """Collects records, then writes them as one WARC file (gzip per record for `.gz` names)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("wb")
        self.writer = WARCWriter(self._file, gzip=path.name.endswith(".gz"))
        self.writer.write_record(self.writer.create_warcinfo_record(path.name, {"software": "newsflow tests"}))

    def response(
        self,
        url: str,
        body: bytes | str,
        *,
        status: str = "200 OK",
        headers: list[tuple[str, str]] | None = None,
        date: str = WARC_DATE,
        warc_headers: dict[str, str] | None = None,
        with_request: bool = True,
    ) -> None:
        """A response record (and the request before it, as crawlers write them); `body` is stored as given."""
        payload = body.encode() if isinstance(body, str) else body
        if with_request:
            request = StatusAndHeaders("GET / HTTP/1.1", [("Host", url.split("/")[2])], is_http_request=True)
            self.writer.write_record(
                self.writer.create_warc_record(
                    url, "request", payload=io.BytesIO(b""), http_headers=request,
                    warc_headers_dict={"WARC-Date": date},
                )
            )
        http = StatusAndHeaders(
            status,
            headers if headers is not None else [("Content-Type", "text/html; charset=utf-8")],
            protocol="HTTP/1.1",
        )
        self.writer.write_record(
            self.writer.create_warc_record(
                url, "response", payload=io.BytesIO(payload), http_headers=http,
                warc_headers_dict={"WARC-Date": date, **(warc_headers or {})},
            )
        )

    def metadata(self, url: str, text: str = "outlinks: none") -> None:
        """A metadata record (skipped by the reader)."""
        self.writer.write_record(
            self.writer.create_warc_record(
                url, "metadata", payload=io.BytesIO(text.encode()), warc_content_type="application/warc-fields"
            )
        )

    def close(self) -> Path:
        """Finish the file and return its path."""
        self._file.close()
        return self.path


def article_html(title: str, paragraphs: int = 6) -> str:
    """A small news page."""
    body = "".join(
        f"<p>{title}: paragraph {i} tells what happened, who said it and why it matters to readers today.</p>"
        for i in range(paragraphs)
    )
    return f"<!doctype html><html><head><title>{title}</title></head><body><article><h1>{title}</h1>{body}" \
           "</article></body></html>"


def record_offsets(path: Path) -> list[int]:
    """Where each record starts (warcio's view), to damage a chosen record."""
    from warcio.archiveiterator import ArchiveIterator

    with path.open("rb") as f:
        iterator = ArchiveIterator(f)
        return [iterator.get_record_offset() for _ in iterator]


def stories(path: Path, count: int, host: str = "a.example") -> Path:
    """A file of `count` news-page responses (no requests): https://HOST/0 … /count-1."""
    builder = WarcBuilder(path)
    for i in range(count):
        builder.response(f"https://{host}/{i}", article_html(f"Story {i}"), with_request=False)
    return builder.close()


def damage(path: Path, record: int, start: int, replacement: bytes) -> None:
    """Overwrite bytes of the `record`-th record (0 = warcinfo), `start` bytes into it."""
    offset = record_offsets(path)[record] + start
    data = bytearray(path.read_bytes())
    data[offset : offset + len(replacement)] = replacement
    path.write_bytes(bytes(data))
