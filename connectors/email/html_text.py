"""HTML mail bodies as clean plain text, for mail that has no text/plain alternative.

Block elements become line breaks, list items get a dash, scripts, styles and the head
are dropped, and the content of <blockquote> is prefixed with "> " so the quoted-history
splitter treats it exactly like quoted plain text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "fieldset",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody",
        "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
CELL_TAGS = frozenset({"td", "th"})
# Blocks followed by an empty line, as a reader would see them.
PARAGRAPH_TAGS = frozenset({"p", "table", "ul", "ol", "blockquote", "h1", "h2", "h3"})
SKIPPED_TAGS = frozenset({"head", "script", "style", "template", "title", "noscript"})
VOID_TAGS = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area"})
SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")
BLANK_RUNS = re.compile(r"\n{3,}")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._skip_depth = 0
        self._quote_depth = 0
        self._pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag == "br":
            self._break(force=True)
        elif tag in CELL_TAGS:
            self._line.append(" ")
        elif tag in BLOCK_TAGS:
            self._break()
            if tag == "blockquote":
                self._quote_depth += 1
            elif tag == "pre":
                self._pre_depth += 1
            elif tag == "li":
                self._line.append("- ")
            elif tag == "hr":
                self.lines.append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._break(force=True)
        elif tag == "hr":
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in BLOCK_TAGS:
            self._break()
            if tag == "blockquote":
                self._quote_depth = max(0, self._quote_depth - 1)
            elif tag == "pre":
                self._pre_depth = max(0, self._pre_depth - 1)
            elif tag in PARAGRAPH_TAGS:
                self.lines.append(self._prefix().rstrip())

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._pre_depth:
            parts = data.split("\n")
            for index, part in enumerate(parts):
                if index:
                    self._break(force=True)
                self._line.append(part)
            return
        text = SPACES.sub(" ", data)
        if text.strip() or (self._line and text == " "):
            self._line.append(text)

    def _prefix(self) -> str:
        return "> " * self._quote_depth

    def _break(self, *, force: bool = False) -> None:
        line = "".join(self._line).strip() if not self._pre_depth else "".join(self._line)
        self._line = []
        if line or force:
            self.lines.append((self._prefix() + line).rstrip())

    def text(self) -> str:
        self._break()
        joined = "\n".join(self.lines).strip("\n")
        return BLANK_RUNS.sub("\n\n", joined)


def html_to_text(html: str) -> str:
    """Readable text of an HTML document or fragment; never raises on malformed markup."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return collector.text()
