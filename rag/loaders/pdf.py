"""PDF through pypdf: the text layer of each page, in paragraphs under "Page N"."""

from __future__ import annotations

from pathlib import Path

from rag.documents import Block, Document, LoadError


def load_pdf(path: Path, source_key: str) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("the PDF is encrypted")
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            for paragraph in _paragraphs(text):
                blocks.append(Block((f"Page {number}",), paragraph))
        info_title = reader.metadata.title if reader.metadata else None
    except LoadError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    if not blocks:
        raise LoadError("the PDF has no text layer (a scan needs OCR first)")
    title = str(info_title).strip() if info_title else path.stem
    return Document(
        source_key, "file", title or path.stem, tuple(blocks), metadata={"format": "pdf"}
    )


def _paragraphs(text: str) -> list[str]:
    """pypdf keeps line breaks; blank lines (or none at all) separate paragraphs."""
    paragraphs, current = [], []
    for line in text.splitlines():
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs
