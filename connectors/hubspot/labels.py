"""HubSpot's values in the words its own screens use: a contact's name, a deal's stage."""

from __future__ import annotations

from typing import Any

# The default sales pipeline's stages as HubSpot shows them; a stage of a pipeline of the
# tenant's own shows as its internal id.
STAGE_LABELS = {
    "appointmentscheduled": "Appointment scheduled",
    "qualifiedtobuy": "Qualified to buy",
    "presentationscheduled": "Presentation scheduled",
    "decisionmakerboughtin": "Decision maker bought-in",
    "contractsent": "Contract sent",
    "closedwon": "Closed won",
    "closedlost": "Closed lost",
}


def stage_label(stage: str) -> str:
    return STAGE_LABELS.get(stage, stage)


def contact_name(properties: dict[str, Any]) -> str:
    name = " ".join(
        str(properties[p]).strip() for p in ("firstname", "lastname") if properties.get(p)
    )
    return name or str(properties.get("email") or "")
