"""The kinds of personal data we detect, and how each is named where it is hidden."""

from __future__ import annotations

from dataclasses import dataclass

EMAIL = "EMAIL_ADDRESS"
PHONE = "PHONE_NUMBER"
CARD = "CREDIT_CARD"
SSN = "US_SSN"
IBAN = "IBAN_CODE"
IP = "IP_ADDRESS"
SECRET = "API_KEY"  # noqa: S105 - an entity name, not a secret
PERSON = "PERSON"

ALL_ENTITIES: tuple[str, ...] = (EMAIL, PHONE, CARD, SSN, IBAN, IP, SECRET, PERSON)

# Short labels the model and approvers see: <EMAIL_1> reads better than <EMAIL_ADDRESS_1>.
LABELS: dict[str, str] = {
    EMAIL: "EMAIL",
    PHONE: "PHONE",
    CARD: "CARD",
    SSN: "SSN",
    IBAN: "IBAN",
    IP: "IP",
    SECRET: "SECRET",
    PERSON: "PERSON",
}
ENTITY_OF_LABEL: dict[str, str] = {label: entity for entity, label in LABELS.items()}


@dataclass(frozen=True)
class Span:
    """One piece of personal data found in a text: `text[start:end]`, end exclusive."""

    entity: str
    start: int
    end: int
    score: float

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end
