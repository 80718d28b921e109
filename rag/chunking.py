"""Structure-aware chunking: sections (runs of blocks under the same headings) are never
mixed in one chunk; within a section whole paragraphs are packed up to the size limit,
and only a paragraph longer than the limit is cut, at sentence or word boundaries.
Consecutive chunks of a section overlap, so a fact on a boundary is whole in one of them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby

from rag.documents import Block, Document

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class ChunkingConfig:
    max_chars: int = 1_000
    overlap_chars: int = 150

    def __post_init__(self) -> None:
        if self.overlap_chars >= self.max_chars // 2:
            raise ValueError("the chunk overlap must be less than half the chunk size")


@dataclass(frozen=True)
class Chunk:
    position: int
    title: str
    heading_path: tuple[str, ...]
    text: str
    url: str | None

    def embedding_text(self) -> str:
        """What the model sees: the text in its context of title and headings."""
        context = " > ".join(part for part in (self.title, *self.heading_path) if part)
        return f"{context}\n\n{self.text}" if context else self.text

    def content_hash(self, model: str) -> str:
        return hashlib.sha256(f"{model}\x00{self.embedding_text()}".encode()).hexdigest()


def chunk_document(document: Document, config: ChunkingConfig) -> list[Chunk]:
    texts: list[tuple[tuple[str, ...], str]] = []
    for heading_path, blocks in groupby(document.blocks, key=lambda b: b.heading_path):
        for text in _pack_section(list(blocks), config):
            texts.append((heading_path, text))
    return [
        Chunk(position, document.title, heading_path, text, document.url)
        for position, (heading_path, text) in enumerate(texts)
    ]


def _pack_section(blocks: list[Block], config: ChunkingConfig) -> list[str]:
    pieces: list[str] = []
    for block in blocks:
        text = block.text.strip()
        if text:
            pieces.extend(_split_long(text, config.max_chars))
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) > config.max_chars:
            chunks.append(current)
            tail = _tail(current, config.overlap_chars)
            current = (
                f"{tail} {piece}"
                if tail and len(tail) + 1 + len(piece) <= config.max_chars
                else piece
            )
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _split_long(text: str, max_chars: int) -> list[str]:
    """A paragraph cut into pieces of at most max_chars, at sentence ends where possible."""
    if len(text) <= max_chars:
        return [text]
    return _pack(
        (
            part
            for sentence in SENTENCE_END.split(text)
            for part in _split_words(sentence, max_chars)
        ),
        max_chars,
    )


def _split_words(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    return _pack(_cut_words(sentence.split(), max_chars), max_chars)


def _cut_words(words: Iterable[str], max_chars: int) -> Iterator[str]:
    """The words, each longer than max_chars (a URL or a run without spaces) cut in pieces."""
    for word in words:
        while len(word) > max_chars:
            yield word[:max_chars]
            word = word[max_chars:]
        yield word


def _pack(parts: Iterable[str], max_chars: int) -> list[str]:
    """The parts joined by spaces, a new piece started wherever one would pass max_chars."""
    pieces: list[str] = []
    current = ""
    for part in parts:
        if current and len(current) + 1 + len(part) > max_chars:
            pieces.append(current)
            current = part
        else:
            current = f"{current} {part}" if current else part
    if current:
        pieces.append(current)
    return pieces


def _tail(text: str, overlap_chars: int) -> str:
    """The last whole sentences (else words) of text, within overlap_chars."""
    if overlap_chars <= 0:
        return ""
    sentences = SENTENCE_END.split(text)
    tail = ""
    for sentence in reversed(sentences):
        candidate = f"{sentence} {tail}".strip()
        if len(candidate) > overlap_chars:
            break
        tail = candidate
    if tail:
        return tail
    words = text[-overlap_chars:].split()
    return " ".join(words[1:]) if len(words) > 1 else ""
