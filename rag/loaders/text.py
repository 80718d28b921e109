"""Plain text and Markdown: headings (Markdown only) and blank-line paragraphs."""

from __future__ import annotations

import re
from pathlib import Path

from rag.documents import Block, Document

HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
FRONT_MATTER_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*)$")


def read_text(path: Path) -> str:
    # Lenient about encoding: a stray byte should not lose a whole document.
    return path.read_bytes().decode("utf-8", errors="replace")


def load_plain_text(path: Path, source_key: str) -> Document:
    text = read_text(path)
    blocks = tuple(Block((), p) for p in _paragraphs(text.splitlines()))
    return Document(source_key, "file", path.stem, blocks, metadata={"format": "text"})


def load_markdown(path: Path, source_key: str) -> Document:
    lines = read_text(path).splitlines()
    front, lines = _front_matter(lines)
    blocks: list[Block] = []
    headings: list[tuple[int, str]] = []
    paragraph: list[str] = []
    in_fence = False
    first_h1: str | None = None

    def flush() -> None:
        text = "\n".join(paragraph).strip()
        if text:
            blocks.append(Block(tuple(h for _, h in headings), text))
        paragraph.clear()

    for line in lines:
        if FENCE.match(line):
            in_fence = not in_fence
            paragraph.append(line)
            continue
        heading = None if in_fence else HEADING.match(line)
        if heading:
            flush()
            level, title = len(heading.group(1)), heading.group(2).strip()
            if level == 1 and first_h1 is None:
                first_h1 = title
            headings[:] = [h for h in headings if h[0] < level] + [(level, title)]
        elif not line.strip() and not in_fence:
            flush()
        else:
            paragraph.append(line)
    flush()
    title = front.get("title") or first_h1 or path.stem
    # The document's title is not also a heading of every chunk under it.
    if first_h1 is not None and title == first_h1:
        blocks = [Block(_drop_first(b.heading_path, first_h1), b.text) for b in blocks]
    return Document(
        source_key,
        "file",
        title,
        tuple(blocks),
        url=front.get("url") or None,
        metadata={"format": "markdown"},
    )


def _drop_first(path: tuple[str, ...], title: str) -> tuple[str, ...]:
    return path[1:] if path and path[0] == title else path


def _front_matter(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    """`title:` and `url:` from a leading --- block; the rest of it is ignored."""
    if not lines or lines[0].strip() != "---":
        return {}, lines
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            values = {}
            for line in lines[1:end]:
                match = FRONT_MATTER_KEY.match(line)
                if match:
                    values[match.group(1).lower()] = match.group(2).strip().strip("\"'")
            return values, lines[end + 1 :]
    return {}, lines


def _paragraphs(lines: list[str]) -> list[str]:
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line.rstrip())
        elif current:
            paragraphs.append("\n".join(current))
            current = []
    if current:
        paragraphs.append("\n".join(current))
    return paragraphs
