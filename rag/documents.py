"""What loaders produce and the chunker consumes: a document as titled blocks of text,
each under the path of headings it sits in."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

SourceKind = Literal["file", "slack", "email"]


@dataclass(frozen=True)
class Block:
    """A paragraph, list item or similar unit that should not be split if it fits."""

    heading_path: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Document:
    # Stable identity of the source, e.g. file:///abs/path, slack://T1/C1/2024-05-01 or
    # file:///abs/box.mbox#<root@id>: re-ingesting it updates the same stored document.
    source_key: str
    kind: SourceKind
    title: str
    blocks: tuple[Block, ...]
    url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Hash of everything stored about the document, to skip unchanged ones."""
        payload = {
            "title": self.title,
            "url": self.url,
            "metadata": self.metadata,
            "blocks": [[list(b.heading_path), b.text] for b in self.blocks],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class LoadError(Exception):
    """A source could not be read; the message says why, without its contents."""
