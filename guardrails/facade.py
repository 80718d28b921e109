"""One object for the request paths: screen what comes in, what goes out, what approvers
see, which tools may run and whether the budget allows another model call.

    guardrails = build_guardrails(settings, pool)        # once per process
    screened = guardrails.screen_inbound(tenant_id, key, text)
    if screened.blocked: reply(screened.notice_for_people)
    else: ask the model with screened.text_for_llm
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import structlog

from core.db import Pool
from core.settings import Settings
from core.warmup import Warming
from guardrails.at_rest import ALWAYS_MASKED
from guardrails.budgets import BudgetCheck, BudgetGuard
from guardrails.classifier import ClassifierStatus
from guardrails.entities import EMAIL
from guardrails.flags import Flag, FlagLog
from guardrails.history import HistoryScreen, ScreenedHistory
from guardrails.injection import InjectionScreen, wrap_untrusted
from guardrails.policy import PiiPolicy, PolicyStore, TenantPolicy
from guardrails.redaction import Redacted, Redactor, partial, placeholders_in, restore
from guardrails.tool_policy import Decision, check_tool_call
from guardrails.toxicity import ToxicityCheck
from guardrails.vault import PLACEHOLDER, PlaceholderVault

if TYPE_CHECKING:
    from guardrails.pii import PiiDetector

log = structlog.get_logger(__name__)

Action = Literal["allow", "review", "block"]
T = TypeVar("T")

# For the system prompt of every call whose text went through screen_inbound.
PLACEHOLDER_RULE = (
    "Values written like <EMAIL_1>, <PHONE_2> or <PERSON_1> stand for personal data "
    "hidden from you. Use them exactly as written wherever the value is needed (for "
    "example as an email recipient): they are replaced by the real values after a person "
    "approves. Never guess or invent the real values. <EMAIL>, <CARD> and the like "
    "without a number are hidden for good."
)
TOXIC_INBOUND_NOTICE = (
    ":no_entry: I can't help with this message: my content check flagged it as abusive. "
    "If that's a mistake, please rephrase it or ask an admin."
)
TOXIC_DRAFT_NOTICE = (
    ":no_entry: I wrote a reply that my content check flagged, so I'm not posting it. "
    "Please rephrase your request or ask an admin."
)


@dataclass(frozen=True)
class Screened:
    """Inbound text after screening."""

    text_for_llm: str
    action: Action  # block: do not call the model; review: a person checks the answer
    flags: tuple[Flag, ...]
    pii_hidden: Mapping[str, int]  # entity -> how many values were hidden
    notice_for_people: str | None = None  # set when blocked

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    @property
    def requires_approval(self) -> bool:
        """Any action this conversation proposes needs a person's approval, even where
        policy would let it run unapproved."""
        return self.action == "review" or any(f.kind == "injection" for f in self.flags)


@dataclass(frozen=True)
class ScreenedDraft:
    text_for_people: str  # the draft with this conversation's placeholders restored
    action: Action  # block: do not post; review: post only after approval
    flags: tuple[Flag, ...]
    notice_for_people: str | None = None  # what to post instead, when blocked


@dataclass(frozen=True)
class ApproverView:
    text: str  # per the tenant's approver_view policy
    flags: tuple[str, ...]  # one line per flag of the conversation
    unresolved: tuple[str, ...]  # placeholders with no value in this conversation


@dataclass(frozen=True)
class ToolCheck:
    decision: Decision
    arguments: dict[str, Any]  # restored: what an allowed, approved call runs with


@dataclass(frozen=True)
class GuardrailsStatus:
    checks: tuple[ClassifierStatus, ...]
    vault: str
    budget: BudgetCheck | None

    def lines(self) -> list[str]:
        """For /agent status and the start-up log."""
        lines = [c.line() for c in self.checks]
        lines.append(f"pii vault: {self.vault}")
        if self.budget is not None:
            lines.append(self.budget.status_line())
        return lines


@dataclass(frozen=True)
class Guardrails:
    policies: PolicyStore
    redactor: Redactor
    vault: PlaceholderVault
    toxicity: ToxicityCheck
    injection: InjectionScreen
    flags: FlagLog
    budgets: BudgetGuard
    vault_key_source: str  # "GUARDRAILS_VAULT_KEY" or "derived from SLACK_SIGNING_SECRET"
    history: HistoryScreen  # earlier turns, screened once each

    # --- Inbound -------------------------------------------------------------------------

    def screen_inbound(
        self, tenant_id: int, conversation_key: str, text: str, *, source: str = "requester"
    ) -> Screened:
        """The person's own message: toxicity (block or review, per policy), injection
        (unless the policy trusts requesters), then PII hidden from the model."""
        policy = self.policies.load(tenant_id)
        flags: list[Flag] = []
        action: Action = "allow"
        verdict = self.toxicity.check(text, threshold=policy.toxicity.threshold)
        if verdict.toxic:
            flags.append(Flag("toxicity", source, (verdict.reason(),)))
            action = "block" if policy.toxicity.action == "block" else "review"
        if policy.injection.screen_requester:
            flags.extend(self._injection_flags(text, source))
        self._record(tenant_id, conversation_key, flags)
        if action == "block":
            return Screened("", "block", tuple(flags), {}, TOXIC_INBOUND_NOTICE)
        redacted = self._redact(tenant_id, conversation_key, text, policy.pii)
        return Screened(redacted.text, action, tuple(flags), redacted.counts)

    def screen_untrusted(
        self, tenant_id: int, conversation_key: str, kind: str, source: str, text: str
    ) -> Screened:
        """Content the person asking did not write (an email, a document, a tool result,
        another person's message): PII hidden, always screened for injection, and
        wrapped as data for the prompt. Never blocked: a flag makes actions need
        approval instead."""
        policy = self.policies.load(tenant_id)
        flags = self._injection_flags(text, kind)
        self._record(tenant_id, conversation_key, flags)
        body = self._redact(tenant_id, conversation_key, text, policy.pii)
        origin = self._redact(tenant_id, conversation_key, source, policy.pii)
        return Screened(
            wrap_untrusted(kind, origin.text, body.text),
            "allow",
            tuple(flags),
            _add(body.counts, origin.counts),
        )

    def screen_history(
        self,
        tenant_id: int,
        conversation_key: str,
        turns: Sequence[Mapping[str, Any]],
        *,
        source: str = "requester",
    ) -> ScreenedHistory:
        """The earlier turns people wrote, screened for injection (each only once, ever);
        a flag in any of them makes the run's actions wait for approval."""
        return self.history.screen(tenant_id, conversation_key, turns, source=source)

    def redact_for_llm(self, tenant_id: int, conversation_key: str, text: str) -> str:
        """PII hiding alone, for text already screened once (earlier turns of a thread)."""
        policy = self.policies.load(tenant_id)
        return self._redact(tenant_id, conversation_key, text, policy.pii).text

    # --- Outbound ------------------------------------------------------------------------

    def screen_draft(self, tenant_id: int, conversation_key: str, draft: str) -> ScreenedDraft:
        """The model's reply before it is posted: toxicity, then this conversation's
        placeholders restored (when the policy says replies get them back)."""
        policy = self.policies.load(tenant_id)
        verdict = self.toxicity.check(draft, threshold=policy.toxicity.threshold)
        flags: tuple[Flag, ...] = ()
        action: Action = "allow"
        if verdict.toxic:
            flags = (Flag("toxicity", "draft", (verdict.reason(),)),)
            self._record(tenant_id, conversation_key, list(flags))
            action = "block" if policy.toxicity.action == "block" else "review"
            if action == "block":
                return ScreenedDraft("", action, flags, TOXIC_DRAFT_NOTICE)
        text = draft
        if policy.pii.mode == "placeholders" and policy.pii.restore_in_replies:
            text = self.restore(tenant_id, conversation_key, draft)
        return ScreenedDraft(text, action, flags)

    def for_approver(self, tenant_id: int, conversation_key: str, text: str) -> ApproverView:
        """What an approver sees of a proposed action's text, with the conversation's
        flags (injection, toxicity...) as separate lines."""
        policy = self.policies.load(tenant_id)
        found = placeholders_in(text)
        values = self.vault.values_for(tenant_id, conversation_key, found) if found else {}
        if policy.pii.approver_view == "real":
            shown = restore(text, values)
        elif policy.pii.approver_view == "partial":
            shown = restore(text, {p: partial(p, v) for p, v in values.items()})
        else:
            shown = text
        flags = tuple(
            dict.fromkeys(
                f.for_people() for f in self.flags.for_conversation(tenant_id, conversation_key)
            )
        )
        return ApproverView(shown, flags, tuple(sorted(found - set(values))))

    def approver_payload(self, tenant_id: int, conversation_key: str, payload: T) -> T:
        """A proposed action's arguments (strings, dicts, lists) as the approver should see
        them under the tenant's approver_view policy; for approval messages."""
        found = _placeholders_deep(payload)
        if not found:
            return payload
        view = self.policies.load(tenant_id).pii.approver_view
        if view == "placeholders":
            return payload
        values = self.vault.values_for(tenant_id, conversation_key, found)
        if view == "partial":
            values = {p: partial(p, v) for p, v in values.items()}
        return _restore_deep(payload, values)  # type: ignore[no-any-return]

    def hide_from_approvers(
        self,
        tenant_id: int,
        conversation_key: str,
        value: T,
        known: Sequence[tuple[str, str]] = (),
    ) -> T:
        """`value` (text in clear, or dicts and lists of it: an email the agent wrote with
        the customer's real name in it) with the personal data the tenant's approvers may
        not see written as this conversation's placeholders, which `approver_payload` then
        shows as the policy says and `restore` brings back for the approved call. The
        `known` (entity, value) pairs are replaced wherever they appear (the recipients,
        the name greeted); the detector finds the rest. Unchanged when approvers see real
        values. Cards, SSNs, IBANs and secrets are left to the at-rest masking, which masks
        them for good."""
        policy = self.policies.load(tenant_id).pii
        if policy.mode == "off" or policy.approver_view == "real":
            return value
        entities = [e for e in policy.redact if e not in ALWAYS_MASKED]
        wanted = [(e, v.strip()) for e, v in known if e in entities and v.strip()]
        assigned = self.vault.placeholders_for(tenant_id, conversation_key, wanted)
        # Longest first: "Alice Example" before "Alice".
        by_length = sorted(assigned.items(), key=lambda item: -len(item[0][1]))

        def hide(text: str) -> str:
            for (entity, real), placeholder in by_length:
                flags = re.IGNORECASE if entity == EMAIL else 0
                # A whole word only: the first name "Al" is not in "Also".
                text = re.sub(rf"(?<!\w){re.escape(real)}(?!\w)", placeholder, text, flags=flags)
            return self._hide_found(tenant_id, conversation_key, text, entities)

        return _map_strings(value, hide)  # type: ignore[no-any-return]

    def restore(self, tenant_id: int, conversation_key: str, value: T) -> T:
        """`value` (a string, or dicts and lists of them: tool arguments) with this
        conversation's placeholders replaced by their real values, for an approved
        action or a reply in the same conversation."""
        found = _placeholders_deep(value)
        if not found:
            return value
        values = self.vault.values_for(tenant_id, conversation_key, found)
        return _restore_deep(value, values)  # type: ignore[no-any-return]

    # --- Tools and budgets ---------------------------------------------------------------

    def check_tool(
        self,
        tenant_id: int,
        conversation_key: str,
        tool_name: str,
        arguments: Mapping[str, Any],
        *,
        channel: str | None,
    ) -> ToolCheck:
        """Whether the call may be attempted, judged on its real (restored) arguments.
        A refusal is logged and flagged on the conversation."""
        real = self.restore(tenant_id, conversation_key, dict(arguments))
        decision = check_tool_call(self.policies.load(tenant_id).tools, tool_name, real, channel)
        if not decision.allowed:
            log.info("guardrails.tool_denied", tool=tool_name, rule=decision.rule, channel=channel)
            self._record(
                tenant_id,
                conversation_key,
                [Flag("tool_denied", tool_name, (decision.reason_for_people,))],
            )
        return ToolCheck(decision, real)

    def check_budget(self, tenant_id: int) -> BudgetCheck:
        return self.budgets.check(tenant_id)

    def status(self, tenant_id: int | None = None) -> GuardrailsStatus:
        budget = (
            self.budgets.check(tenant_id, record_notice=False) if tenant_id is not None else None
        )
        return GuardrailsStatus(
            checks=(self.toxicity.status(), self.injection.status()),
            vault=f"encrypted, key {self.vault_key_source}",
            budget=budget,
        )

    def policy(self, tenant_id: int) -> TenantPolicy:
        return self.policies.load(tenant_id)

    # --- Internals -----------------------------------------------------------------------

    def _injection_flags(self, text: str, source: str) -> list[Flag]:
        verdict = self.injection.screen(text)
        if not verdict.flagged:
            return []
        log.warning("guardrails.injection_flagged", source=source, reasons=list(verdict.reasons))
        return [Flag("injection", source, verdict.reasons)]

    def _record(self, tenant_id: int, conversation_key: str, flags: list[Flag]) -> None:
        for flag in flags:
            self.flags.record(tenant_id, conversation_key, flag)

    def _hide_found(
        self, tenant_id: int, conversation_key: str, text: str, entities: Sequence[str]
    ) -> str:
        """`text` with each value of `entities` the detector finds outside the
        placeholders already in it written as this conversation's placeholder."""
        if not text or not entities:
            return text
        taken = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]
        spans = [
            s
            for s in self.redactor.detector.get().detect(text, entities)
            if not any(s.start < end and start < s.end for start, end in taken)
        ]
        if not spans:
            return text
        items = [(s.entity, text[s.start : s.end]) for s in spans]
        assigned = self.vault.placeholders_for(tenant_id, conversation_key, items)
        for span, item in reversed(list(zip(spans, items, strict=True))):
            text = text[: span.start] + assigned[item] + text[span.end :]
        return text

    def _redact(
        self, tenant_id: int, conversation_key: str, text: str, policy: PiiPolicy
    ) -> Redacted:
        if policy.mode == "off" or not text:
            return Redacted(text, {})

        def assign(items: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
            return self.vault.placeholders_for(tenant_id, conversation_key, items)

        redacted = self.redactor.redact(
            text,
            entities=policy.redact,
            reversible=policy.reversible if policy.mode == "placeholders" else (),
            assign=assign if policy.mode == "placeholders" else None,
        )
        if redacted.hidden:
            log.info("guardrails.pii_hidden", counts=dict(redacted.counts))
        return redacted


def _add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    total = dict(a)
    for key, count in b.items():
        total[key] = total.get(key, 0) + count
    return total


def _placeholders_deep(value: Any) -> set[str]:
    if isinstance(value, str):
        return placeholders_in(value)
    if isinstance(value, Mapping):
        return set().union(*(_placeholders_deep(v) for v in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(_placeholders_deep(v) for v in value))
    return set()


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {k: _map_strings(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, change) for v in value]
    if isinstance(value, tuple):
        return tuple(_map_strings(v, change) for v in value)
    return value


def _restore_deep(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return restore(value, values)
    if isinstance(value, Mapping):
        return {k: _restore_deep(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_deep(v, values) for v in value]
    if isinstance(value, tuple):
        return tuple(_restore_deep(v, values) for v in value)
    return value


def pii_detector() -> Warming[PiiDetector]:
    """The personal-data detector, not yet built: `start()` it to load it in the
    background (the worker does, once it is ready for jobs), or the first text screened
    builds it. Either way every redaction waits for it."""

    def build() -> PiiDetector:
        # Imported here: presidio imports spaCy, transformers and torch (seconds).
        from guardrails.pii import build_detector

        return build_detector()

    return Warming("the personal-data detector", build)


def build_guardrails(
    settings: Settings, pool: Pool, detector: Warming[PiiDetector] | None = None
) -> Guardrails:
    """Everything from settings, once per process. Raises core.errors.StartupError when a
    configured model cannot be loaded, so a wrong path stops the process at start.
    `detector` is pii_detector(), perhaps started already; without it, one is made that
    loads when the first text is screened."""
    from core.errors import StartupError
    from guardrails.at_rest import default_masker
    from guardrails.classifier import (
        ClassifierUnavailable,
        TextClassifier,
        load_classifier,
        set_inference_threads,
    )
    from guardrails.toxicity import DEFAULT_TOXIC_LABELS
    from guardrails.vault import VaultKeys

    def classifier(path: str | None) -> TextClassifier | None:
        if not path:
            return None
        set_inference_threads(settings.guardrails_inference_threads)
        try:
            return load_classifier(path)
        except ClassifierUnavailable as exc:
            raise StartupError(str(exc)) from None

    if settings.guardrails_vault_key and settings.guardrails_vault_key.get_secret_value():
        secret, key_source = (
            settings.guardrails_vault_key.get_secret_value(),
            "GUARDRAILS_VAULT_KEY",
        )
    else:
        secret = settings.slack_signing_secret.get_secret_value()
        key_source = "derived from SLACK_SIGNING_SECRET"
    policies = PolicyStore(pool, cache_seconds=settings.guardrails_policy_cache_seconds)
    injection = InjectionScreen(
        classifier(settings.guardrails_injection_model),
        settings.guardrails_injection_threshold,
        _labels(settings.guardrails_injection_labels),
    )
    flags = FlagLog(pool)
    detector = detector or pii_detector()
    default_masker().adopt(detector)  # what is stored is masked with the same detector
    return Guardrails(
        policies=policies,
        redactor=Redactor(detector),
        vault=PlaceholderVault(pool, VaultKeys.derive(secret)),
        toxicity=ToxicityCheck(
            classifier(settings.guardrails_toxicity_model),
            settings.guardrails_toxicity_threshold,
            _labels(settings.guardrails_toxicity_labels) or DEFAULT_TOXIC_LABELS,
        ),
        injection=injection,
        flags=flags,
        budgets=BudgetGuard(pool, policies, warn_ratio=settings.guardrails_budget_warn_ratio),
        vault_key_source=key_source,
        history=HistoryScreen(pool, injection, flags),
    )


def _labels(value: str) -> tuple[str, ...]:
    return tuple(label.strip() for label in value.split(",") if label.strip())
