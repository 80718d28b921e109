"""Personal data masked for good before it is stored.

Card numbers, SSNs, IBANs and API keys or other secrets are never written to the
database in clear, whatever the tenant's policy: the Slack listener masks them in a
request before its row is inserted, the SMTP listener stores the raw message only sealed,
and the worker masks them in what it stores (what an email says, messages, pending
actions, the audit log). Whatever else the tenant's policy hides from the model
for good (redacted and not reversible, or everything redacted in "mask" mode) is masked
too. The agent then works on the masked text: a card is "**** **** **** 1111", which
still tells it (and a person reading the thread) which card is meant.

Detection is guardrails/pii.py's detector, loaded on first need: guardrails/prefilter.py
decides without it whether a text might hold anything to mask, so the listeners import
presidio only once a text might.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from guardrails.entities import CARD, IBAN, PERSON, SECRET, SSN
from guardrails.partial_form import partial_form
from guardrails.policy import POLICY_SQL, PiiPolicy, TenantPolicy, parse_policy
from guardrails.prefilter import worth_running

if TYPE_CHECKING:
    from core.warmup import Warming
    from guardrails.pii import PiiDetector

T = TypeVar("T")

# Never stored in clear, whatever the policy says.
ALWAYS_MASKED: tuple[str, ...] = (CARD, SSN, IBAN, SECRET)
# A base64 blob (a reply's MIME message in an action's arguments): masking inside it
# would only corrupt it, and it holds nothing that is not also in the text beside it.
_ENCODED = re.compile(r"[A-Za-z0-9+/]{200,}={0,2}")
SECRET_MASK = "[secret removed]"  # noqa: S105 - what is stored instead of a secret


def masked_for_good(policy: PiiPolicy) -> tuple[str, ...]:
    """What is never stored in clear for a tenant with this policy."""
    if policy.mode == "mask":
        extra = list(policy.redact)
    elif policy.mode == "placeholders":
        extra = [e for e in policy.redact if e not in policy.reversible]
    else:  # "off": the model sees everything, but the database still never does
        extra = []
    return tuple(dict.fromkeys([*ALWAYS_MASKED, *extra]))


def stored_form(entity: str, value: str) -> str:
    """What is stored instead of `value`: enough for a person to tell which one it was."""
    if entity == SECRET:
        return SECRET_MASK
    return partial_form(entity, value)


class AtRestMasker:
    """Masks text for storage. Thread-safe; the detector is built on first need."""

    def __init__(self, detector: Callable[[bool], PiiDetector] | None = None) -> None:
        self._make = detector or _build_detector
        self._detectors: dict[bool, PiiDetector] = {}
        self._adopted: Warming[PiiDetector] | None = None
        self._lock = threading.Lock()

    def needs_detector(self, text: str, entities: Collection[str]) -> bool:
        return bool(text) and bool(worth_running(text, entities))

    def mask(self, text: str, entities: Collection[str] = ALWAYS_MASKED) -> str:
        """`text` with every value of `entities` in its stored form."""
        wanted = worth_running(text, entities) if text else []
        if not wanted:
            return text
        spans = self._detector(PERSON in wanted).detect(text, wanted)
        for span in reversed(spans):
            text = (
                text[: span.start]
                + stored_form(span.entity, text[span.start : span.end])
                + text[span.end :]
            )
        return text

    def mask_deep(
        self,
        value: T,
        entities: Collection[str] = ALWAYS_MASKED,
        *,
        skip: Callable[[str], bool] = lambda key: False,
        encoded_as: str | None = None,
    ) -> T:
        """`value` (strings, and dicts and lists of them: a JSON payload) with every
        string masked, except those under a key `skip` says holds no free text. A base64
        blob is left as it is, or replaced by `encoded_as` when given."""
        if isinstance(value, str):
            if _ENCODED.fullmatch(value):
                return value if encoded_as is None else encoded_as  # type: ignore[return-value]
            return self.mask(value, entities)  # type: ignore[return-value]
        if isinstance(value, Mapping):
            return {  # type: ignore[return-value]
                k: v if skip(k) else self.mask_deep(v, entities, skip=skip, encoded_as=encoded_as)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            masked = [self.mask_deep(v, entities, skip=skip, encoded_as=encoded_as) for v in value]
            return tuple(masked) if isinstance(value, tuple) else masked  # type: ignore[return-value]
        return value

    def might_need_detector(
        self,
        value: Any,
        entities: Collection[str],
        *,
        skip: Callable[[str], bool] = lambda key: False,
    ) -> bool:
        """Whether masking `value` (as mask_deep would, with the same `skip`) could load
        the detector: the listeners then mask in a thread, not on their event loop."""
        return any(self.needs_detector(text, entities) for text in _strings(value, skip))

    def adopt(self, detector: Warming[PiiDetector]) -> None:
        """Use `detector` (one that finds names too) rather than building another; while
        it is still loading, masking waits for it."""
        with self._lock:
            self._adopted = detector

    def warm(self) -> None:
        """Load the detector now (seconds: it imports presidio), so the first text that
        needs masking does not wait for it; the listeners call it in the background once
        they are ready."""
        self._detector(False)

    def _detector(self, names: bool) -> PiiDetector:
        adopted = self._adopted
        if adopted is not None:
            return adopted.get()  # outside the lock: waiting for it must not block adopt
        with self._lock:
            detector = self._detectors.get(names)
            if detector is None:
                detector = self._detectors[names] = self._make(names)
            return detector


def _build_detector(names: bool) -> PiiDetector:
    from guardrails.pii import build_detector  # presidio: seconds to import

    return build_detector(names=names)


def _strings(value: Any, skip: Callable[[str], bool]) -> Iterable[str]:
    """The strings mask_deep would look at: none under a key `skip` says holds no text."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if not skip(k):
                yield from _strings(v, skip)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v, skip)


# --- Slack event payloads ------------------------------------------------------------------

# Keys of a Slack payload that hold identifiers, never free text: left as they are.
_SLACK_ID_KEYS = frozenset(
    {
        "type",
        "subtype",
        "ts",
        "channel",
        "user",
        "team",
        "channel_type",
        "token",
        "id",
        "event_context",
        "authorizations",
    }
)


def slack_id_key(key: str) -> bool:
    # *_token: Slack's opaque tokens (an event's action_token, which the search tools
    # hand back to Slack): identifiers, and masking one would break what uses it.
    return key in _SLACK_ID_KEYS or key.endswith(("_id", "_ts", "_ids", "_token"))


# --- Policies, read by the asyncio listeners -------------------------------------------------


class AsyncPolicyCache:
    """Which entities each tenant masks for good, read from `guardrail_policies` and kept
    for `seconds` (the deployment's GUARDRAILS_POLICY_CACHE_SECONDS)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._known: dict[int, tuple[float, tuple[str, ...]]] = {}

    def cached(self, tenant_id: int) -> tuple[str, ...] | None:
        """The tenant's entities if known and fresh, without asking the database."""
        cached = self._known.get(tenant_id)
        if cached is not None and self.clock() - cached[0] < self.seconds:
            return cached[1]
        return None

    async def entities(self, conn: Any, tenant_id: int) -> tuple[str, ...]:
        now = self.clock()
        known = self.cached(tenant_id)
        if known is not None:
            return known
        row = await (await conn.execute(POLICY_SQL, (tenant_id,))).fetchone()
        document = row["policy"] if row else None
        found = masked_for_good(parse_policy(tenant_id, document).pii)
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[tenant_id] = (now, found)
        return found


class AtRest:
    """What the Slack listener uses: the tenant's entities, then the masking, in a
    thread whenever the detector may be needed (it may have to be loaded)."""

    def __init__(self, policy_seconds: float = 30.0, masker: AtRestMasker | None = None) -> None:
        self.masker = masker or AtRestMasker()
        self.policies = AsyncPolicyCache(policy_seconds)

    async def entities(self, conn: Any, tenant_id: int) -> tuple[str, ...]:
        return await self.policies.entities(conn, tenant_id)

    async def mask_slack_payload(
        self, conn: Any, tenant_id: int, payload: dict[str, Any]
    ) -> dict[str, Any]:
        entities = await self.entities(conn, tenant_id)
        # A message's ts ("1765003801.123456") looks like an SSN to the cheap check: only
        # the text mask_deep would mask decides whether the detector is needed.
        if not self.masker.might_need_detector(payload, entities, skip=slack_id_key):
            return payload
        return await asyncio.to_thread(self.masker.mask_deep, payload, entities, skip=slack_id_key)


# --- The worker: one masker per process, sharing the guardrails' detector ------------------

_DEFAULT = AtRestMasker()


def default_masker() -> AtRestMasker:
    """This process's masker; build_guardrails hands it the detector it already has."""
    return _DEFAULT


def policy_of(conn: Any, tenant_id: int) -> TenantPolicy:
    row = conn.execute(POLICY_SQL, (tenant_id,)).fetchone()
    document = (row["policy"] if isinstance(row, Mapping) else row[0]) if row else None
    return parse_policy(tenant_id, document)


def for_storage(conn: Any, tenant_id: int, value: T, policy: TenantPolicy | None = None) -> T:
    """`value` (text, or a JSON document) with what the tenant masks for good masked."""
    policy = policy or policy_of(conn, tenant_id)
    return _DEFAULT.mask_deep(value, masked_for_good(policy.pii))


def as_approvers_see(conn: Any, tenant_id: int, value: T, policy: TenantPolicy | None = None) -> T:
    """`value` (text in clear, or a document of it) as the tenant's approvers may see it:
    what the policy hides from the model shown partly (j***@example.com, J. S.) unless
    approvers see real values, and what it masks for good never. For the audit log,
    which cannot be erased later: a base64 blob in it (a drafted email's MIME message, which
    the text beside it shows) is replaced by a short note."""
    policy = policy or policy_of(conn, tenant_id)
    entities = list(masked_for_good(policy.pii))
    if policy.pii.mode != "off" and policy.pii.approver_view != "real":
        entities += policy.pii.redact
    return _DEFAULT.mask_deep(
        value, tuple(dict.fromkeys(entities)), encoded_as="[encoded message, not kept here]"
    )
