"""HubSpot tools: search contacts and read records (read-only); add a note to a contact and
move a deal to another stage (external: they wait for a person's approval)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.hubspot import api
from connectors.hubspot.labels import STAGE_LABELS, contact_name, stage_label
from connectors.sessions import Session
from connectors.tool_errors import read_result, write_result
from core.tools import (
    ActionContext,
    Preview,
    Tool,
    Watched,
    external_tool,
    read_only_tool,
)

RECORD_ID = r"^\d{1,20}$"
OBJECT_TYPES = {"contact": "contacts", "company": "companies", "deal": "deals"}


class SearchContacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, max_length=200, description="Words to find: a name, email or company"
    )
    limit: int = Field(default=10, ge=1, le=50, description="At most this many contacts")


class ReadRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_type: Literal["contact", "company", "deal"]
    record_id: str = Field(pattern=RECORD_ID, description="The HubSpot record id, e.g. 5101")


class AddContactNote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: str = Field(pattern=RECORD_ID, description="The HubSpot contact id")
    text: str = Field(min_length=1, max_length=5000, description="The note, in plain text")


class UpdateDealStage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deal_id: str = Field(pattern=RECORD_ID, description="The HubSpot deal id")
    stage: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_-]+$",
        description=(
            "The internal id of the stage, e.g. appointmentscheduled, qualifiedtobuy, "
            "presentationscheduled, decisionmakerboughtin, contractsent, closedwon, closedlost"
        ),
    )

    @field_validator("stage", mode="before")
    @classmethod
    def _default_stage(cls, value: object) -> object:
        """A default pipeline's stage however it is written ("closed_won", "Closed won",
        "contract-sent") as its internal id: the 1.5B model wrote "closed_won", which
        HubSpot does not know. Any other value is a stage of the tenant's own pipeline."""
        if isinstance(value, str):
            key = re.sub(r"[^a-z0-9]", "", value.lower())
            if key in STAGE_LABELS:
                return key
        return value


def hubspot_tools(session: Session) -> list[Tool]:
    return [
        _search_contacts(session),
        _read_record(session),
        _add_contact_note(session),
        _update_deal_stage(session),
    ]


def _search_contacts(session: Session) -> Tool:
    return read_only_tool(
        "hubspot_search_contacts",
        "Find HubSpot contacts by name, email or company; returns ids and details.",
        SearchContacts,
        lambda context, a: {
            "contacts": api.search_contacts(session(context.tenant_id), a.query, a.limit)
        },
        lambda a: f"Search HubSpot contacts for {a.query!r}",
        failures=read_result,
    )


def _read_record(session: Session) -> Tool:
    return read_only_tool(
        "hubspot_read_record",
        (
            "Read one HubSpot contact, company or deal by id: its main properties and the "
            "ids of the records associated with it."
        ),
        ReadRecord,
        lambda context, a: api.read_record(
            session(context.tenant_id), OBJECT_TYPES[a.record_type], a.record_id
        ),
        lambda a: f"Read HubSpot {a.record_type} {a.record_id}",
        failures=read_result,
    )


def _add_contact_note(session: Session) -> Tool:
    def preview(context: ActionContext, arguments: AddContactNote) -> Preview:
        # Who the note goes on, as HubSpot has them now. Nothing is watched: the note goes
        # on that record whatever its name is by then (a renamed contact is the same one).
        found = api.read_record(session(context.tenant_id), "contacts", arguments.contact_id)
        who = contact_name(found["properties"]) or f"contact {arguments.contact_id}"
        company = str(found["properties"].get("company") or "")
        shown = f"{who} ({company})" if company else who
        return Preview(
            subject=f"Contact: {shown}",
            changes=("Adds a note to their timeline",),
            covers=("contact_id",),
        )

    return external_tool(
        "hubspot_add_contact_note",
        (
            "Add a note to a HubSpot contact's timeline. Needs a person's approval before "
            "it happens."
        ),
        AddContactNote,
        lambda context, a, key: api.create_contact_note(
            session(context.tenant_id), a.contact_id, a.text, key
        ),
        lambda context, a, key: api.find_contact_note(
            session(context.tenant_id), a.contact_id, key
        ),
        # The card names the contact (its preview), as approvers may see names; HubSpot's
        # record id means nothing to people.
        lambda a: "Add a note to a HubSpot contact",
        preview=("the contact", preview),
        failures=write_result,
    )


def _update_deal_stage(session: Session) -> Tool:
    def find(context: ActionContext, arguments: UpdateDealStage, key: str) -> dict[str, Any] | None:
        # Setting a stage is idempotent: if the deal is already there, the action is done.
        stage = api.deal_stage(session(context.tenant_id), arguments.deal_id)
        if stage != arguments.stage:
            return None
        return {"deal_id": arguments.deal_id, "dealstage": stage}

    def preview(context: ActionContext, arguments: UpdateDealStage) -> Preview:
        found = api.read_record(session(context.tenant_id), "deals", arguments.deal_id)
        name = str(found["properties"].get("dealname") or f"deal {arguments.deal_id}")
        stage = found["properties"].get("dealstage")
        before = stage_label(str(stage)) if stage else "no stage"
        return Preview(
            subject=f"Deal: {name}",
            changes=(f"Stage: {before} → {stage_label(arguments.stage)}",),
            watched=(Watched("the deal's stage", stage, before),),
            covers=("deal_id", "stage"),
        )

    return external_tool(
        "hubspot_update_deal_stage",
        (
            "Move a HubSpot deal to another pipeline stage. Needs a person's approval "
            "before it happens."
        ),
        UpdateDealStage,
        lambda context, a, key: api.set_deal_stage(session(context.tenant_id), a.deal_id, a.stage),
        find,
        lambda a: f"Move a HubSpot deal to {stage_label(a.stage)}",  # the card names it
        preview=("the current stage", preview),
        failures=write_result,
    )
