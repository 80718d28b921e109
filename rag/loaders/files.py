"""Files and folders: which files to read, and the loader for each kind."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from rag.documents import Document, LoadError
from rag.loaders.html import load_html
from rag.loaders.mail import load_eml, load_mbox
from rag.loaders.pdf import load_pdf
from rag.loaders.text import load_markdown, load_plain_text

Loader = Callable[[Path, str], list[Document]]


def _one(load: Callable[[Path, str], Document]) -> Loader:
    return lambda path, key: [load(path, key)]


LOADERS: dict[str, Loader] = {
    ".md": _one(load_markdown),
    ".markdown": _one(load_markdown),
    ".txt": _one(load_plain_text),
    ".text": _one(load_plain_text),
    ".html": _one(load_html),
    ".htm": _one(load_html),
    ".pdf": _one(load_pdf),
    ".eml": load_eml,
    ".mbox": load_mbox,
}


def file_key(path: Path) -> str:
    """A file's stable identity: its absolute path as a URI."""
    return path.resolve().as_uri()


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in LOADERS


def discover(root: Path) -> list[Path]:
    """Supported files at or under root, in a stable order; hidden ones are left out."""
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and is_supported(p)
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def load_file(path: Path) -> list[Document]:
    """The documents in one file; LoadError names the reason it cannot be read."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise LoadError(f"unsupported file type {path.suffix or '(none)'}")
    try:
        return loader(path, file_key(path))
    except LoadError:
        raise
    except (OSError, UnicodeError, ValueError) as exc:
        raise LoadError(f"{type(exc).__name__}: {exc}") from None


def all_files(roots: Iterable[Path]) -> list[Path]:
    seen: dict[Path, None] = {}
    for root in roots:
        for path in discover(root):
            seen.setdefault(path.resolve(), None)
    return list(seen)
