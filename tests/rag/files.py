"""Small documents of every supported format, written the way real tools write them."""

from __future__ import annotations

from pathlib import Path


def pdf_bytes(lines: list[str]) -> bytes:
    """A valid one-page PDF whose text layer holds `lines` (Helvetica, one per line)."""
    text_ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        text_ops.append(f"({escaped}) Tj T*")
    text_ops.append("ET")
    stream = "\n".join(text_ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


HANDBOOK_MD = """---
title: Employee Handbook
url: https://intranet.example.com/handbook
---
# Employee Handbook

Welcome to the company. This handbook explains how we work.

## Travel

### Booking flights

Book flights through the travel portal at least fourteen days ahead. Economy class is the
default for trips under six hours.

### Expenses

Submit travel expenses within thirty days with scanned receipts attached.

## Security

Badges must be worn visibly at all times inside the office.
"""

FAQ_HTML = """<!doctype html>
<html><head><title>Support FAQ</title>
<link rel="canonical" href="https://help.example.com/faq">
<style>body { color: red }</style><script>var tracking = "ignore me";</script></head>
<body><nav>Home | Products | Contact</nav>
<h1>Support FAQ</h1>
<h2>Refunds</h2>
<p>Customers may request reimbursement within 30 days of the order date.</p>
<h2>Shipping</h2>
<p>Orders leave the warehouse within two business days.</p>
</body></html>
"""

NOTES_TXT = """Release notes for the Kestrel gateway.

Version 4.2 adds support for rotating TLS certificates without a restart.
"""

THREAD_EML = """From: Dana Ops <dana@example.com>
To: team@example.com
Subject: Database failover drill
Message-ID: <drill-1@example.com>
Date: Mon, 6 May 2024 09:00:00 +0000

The failover drill is scheduled for Thursday at 10:00 UTC. Expect five minutes of
read-only mode on the primary cluster.
"""

MANUAL_PDF_LINES = [
    "Pump maintenance manual",
    "Replace the impeller seal every 2000 operating hours.",
    "Use only lubricant grade HX-40 on the bearings.",
]


def write_mixed_folder(root: Path) -> dict[str, Path]:
    """A folder with one document of each format (and a nested folder)."""
    (root / "policies").mkdir(parents=True)
    files = {
        "md": root / "policies" / "handbook.md",
        "html": root / "faq.html",
        "txt": root / "notes.txt",
        "eml": root / "drill.eml",
        "pdf": root / "manual.pdf",
    }
    files["md"].write_text(HANDBOOK_MD)
    files["html"].write_text(FAQ_HTML)
    files["txt"].write_text(NOTES_TXT)
    files["eml"].write_text(THREAD_EML)
    files["pdf"].write_bytes(pdf_bytes(MANUAL_PDF_LINES))
    return files
