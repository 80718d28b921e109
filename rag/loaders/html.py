"""HTML: the text of block elements under the h1-h6 headings they follow."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from rag.documents import Block, Document
from rag.loaders.text import read_text

SKIPPED = frozenset({"script", "style", "nav", "noscript", "template", "svg", "head"})
BLOCKS = frozenset(
    {"p", "li", "pre", "blockquote", "td", "th", "dd", "dt", "div", "section", "article",
     "tr", "table", "ul", "ol", "br", "hr", "figcaption", "main", "body"}
)  # fmt: skip
HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.canonical: str | None = None
        self.blocks: list[Block] = []
        self.first_h1: str | None = None
        self._headings: list[tuple[int, str]] = []
        self._text: list[str] = []
        self._skip_depth = 0
        self._in_title = False
        self._heading_level: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag == "link" and dict(attrs).get("rel") == "canonical":
            self.canonical = dict(attrs).get("href")
        if tag in SKIPPED:
            self._skip_depth += 1
        elif tag in HEADINGS:
            self._flush()
            self._heading_level = HEADINGS[tag]
        elif tag in BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in HEADINGS and self._heading_level is not None:
            text = " ".join("".join(self._text).split())
            self._text.clear()
            level = self._heading_level
            self._heading_level = None
            if text:
                if level == 1 and self.first_h1 is None:
                    self.first_h1 = text
                self._headings = [h for h in self._headings if h[0] < level] + [(level, text)]
        elif tag in BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip_depth:
            self._text.append(data)

    def _flush(self) -> None:
        if self._heading_level is not None:
            return  # inside a heading: its text becomes the heading, not a block
        text = " ".join("".join(self._text).split())
        self._text.clear()
        if text:
            self.blocks.append(Block(tuple(h for _, h in self._headings), text))

    def close(self) -> None:
        super().close()
        self._flush()


def html_to_blocks(html: str) -> _Extractor:
    extractor = _Extractor()
    extractor.feed(html)
    extractor.close()
    return extractor


def load_html(path: Path, source_key: str) -> Document:
    page = html_to_blocks(read_text(path))
    title = " ".join(page.title.split()) or page.first_h1 or path.stem
    blocks = page.blocks
    if page.first_h1 and title == page.first_h1:
        blocks = [
            Block(b.heading_path[1:] if b.heading_path[:1] == (title,) else b.heading_path, b.text)
            for b in blocks
        ]
    return Document(
        source_key, "file", title, tuple(blocks), url=page.canonical, metadata={"format": "html"}
    )
