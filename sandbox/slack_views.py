"""Views (modals and Home tabs) and the trigger_ids that allow opening a modal.

Slack keeps each person's modals as a stack: ``views.open`` starts one from a trigger_id
that an interaction handed to the app, ``views.push`` (or a ``response_action: push``)
adds to it, and submitting or closing removes the top view (``clear`` removes them all).
`ViewStore` keeps that state for one workspace; it is safe to use from any thread and hands
out copies only.
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.slack_types import JsonDict, SlackError

# Slack lets an app stack at most three modals.
MAX_STACK_DEPTH = 3


@dataclass
class View:
    id: str
    team_id: str
    app_id: str
    bot_id: str
    definition: JsonDict  # the view payload as the app sent it
    hash: str
    root_view_id: str
    previous_view_id: str | None = None
    external_id: str = ""
    user_id: str | None = None  # whose modal stack or Home tab it is
    closed: bool = False  # a modal that was submitted, cleared or closed

    @property
    def type(self) -> str:
        return str(self.definition.get("type", "modal"))

    @property
    def callback_id(self) -> str:
        return str(self.definition.get("callback_id", ""))

    @property
    def blocks(self) -> list[JsonDict]:
        blocks = self.definition.get("blocks")
        return [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []

    def to_slack(self) -> JsonDict:
        spec = self.definition
        return {
            "id": self.id,
            "team_id": self.team_id,
            "type": self.type,
            "blocks": copy.deepcopy(self.blocks),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": self.callback_id,
            "state": {"values": {}},
            "hash": self.hash,
            "title": copy.deepcopy(spec.get("title")),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "close": copy.deepcopy(spec.get("close")),
            "submit": copy.deepcopy(spec.get("submit")),
            "previous_view_id": self.previous_view_id,
            "root_view_id": self.root_view_id,
            "app_id": self.app_id,
            "external_id": self.external_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }


@dataclass
class _Trigger:
    user_id: str | None  # the person whose interaction produced it
    used: bool = False


class ViewStore:
    """The views of one workspace's app, by ID, with each person's modal stack."""

    def __init__(
        self, *, team_id: str, app_id: str, bot_id: str, clock: Callable[[], float]
    ) -> None:
        self._team_id = team_id
        self._app_id = app_id
        self._bot_id = bot_id
        self._clock = clock
        self._lock = threading.Lock()
        self._views: dict[str, View] = {}  # in opening order
        self._home_views: dict[str, str] = {}  # user ID -> view ID
        self._triggers: dict[str, _Trigger] = {}
        self._counter = 0

    # -- trigger_ids ---------------------------------------------------------------------------

    def issue_trigger_id(self, user_id: str | None = None) -> str:
        """A trigger_id as an interaction by ``user_id`` carries; it opens one modal."""
        with self._lock:
            trigger = (
                f"{int(self._clock())}.{secrets.randbelow(10**12):012d}.{secrets.token_hex(16)}"
            )
            self._triggers[trigger] = _Trigger(user_id)
            return trigger

    def use_trigger_id(self, trigger_id: str) -> str | None:
        """Spend a trigger_id; returns the person it was issued for (None if nobody)."""
        with self._lock:
            trigger = self._triggers.get(trigger_id)
            if trigger is None:
                raise SlackError("invalid_trigger_id")
            if trigger.used:
                raise SlackError("exchanged_trigger_id")
            trigger.used = True
            return trigger.user_id

    # -- views ---------------------------------------------------------------------------------

    def open(self, definition: JsonDict, *, user_id: str | None = None) -> View:
        """A new view at the bottom of a stack (or a Home tab)."""
        with self._lock:
            return copy.deepcopy(self._add(definition, user_id=user_id, below=None))

    def push(self, view_id: str, definition: JsonDict) -> View:
        """A new modal on top of ``view_id``'s stack."""
        with self._lock:
            below = self._find(view_id, None)
            depth = 1
            cursor = below
            while cursor.previous_view_id is not None:
                depth += 1
                cursor = self._views[cursor.previous_view_id]
            if depth >= MAX_STACK_DEPTH:
                raise SlackError("push_limit_reached")
            return copy.deepcopy(self._add(definition, user_id=below.user_id, below=below))

    def update(
        self,
        definition: JsonDict,
        *,
        view_id: str | None = None,
        external_id: str | None = None,
        hash: str | None = None,
    ) -> View:
        with self._lock:
            view = self._find(view_id, external_id)
            if hash is not None and hash != view.hash:
                raise SlackError("hash_conflict")
            view.definition = copy.deepcopy(definition)
            view.hash = self._new_hash()
            return copy.deepcopy(view)

    def publish_home(self, user_id: str, definition: JsonDict, *, hash: str | None = None) -> View:
        """Set someone's Home tab, keeping its view ID across publishes like Slack."""
        with self._lock:
            existing = self._home_views.get(user_id)
            if existing is not None:
                current = self._views[existing]
                if hash is not None and hash != current.hash:
                    raise SlackError("hash_conflict")
                current.definition = copy.deepcopy(definition)
                current.hash = self._new_hash()
                return copy.deepcopy(current)
            view = self._add(definition, user_id=user_id, below=None)
            self._home_views[user_id] = view.id
            return copy.deepcopy(view)

    def close(self, view_id: str, *, whole_stack: bool = False) -> list[View]:
        """Close a modal (submitted or dismissed), or with ``whole_stack`` its whole stack."""
        with self._lock:
            view = self._find(view_id, None)
            closing = [view]
            if whole_stack:
                closing = [v for v in self._views.values() if v.root_view_id == view.root_view_id]
            for each in closing:
                each.closed = True
            return copy.deepcopy(closing)

    def get(self, view_id: str) -> View:
        """Any view ever opened, closed ones included."""
        with self._lock:
            view = self._views.get(view_id)
            if view is None:
                raise SlackError("not_found")
            return copy.deepcopy(view)

    def home_view(self, user_id: str) -> View | None:
        with self._lock:
            view_id = self._home_views.get(user_id)
            return copy.deepcopy(self._views[view_id]) if view_id is not None else None

    def last_modal(self, user_id: str) -> View | None:
        """The modal on top of someone's screen: their most recently opened open modal."""
        with self._lock:
            for view in reversed(self._views.values()):
                if view.user_id == user_id and view.type == "modal" and not view.closed:
                    return copy.deepcopy(view)
            return None

    # -- internals -----------------------------------------------------------------------------

    def _add(self, definition: JsonDict, *, user_id: str | None, below: View | None) -> View:
        external_id = str(definition.get("external_id", ""))
        if external_id and any(v.external_id == external_id for v in self._views.values()):
            raise SlackError("duplicate_external_id")
        self._counter += 1
        view_id = f"V0SANDBOX{self._counter:04d}"
        view = View(
            id=view_id,
            team_id=self._team_id,
            app_id=self._app_id,
            bot_id=self._bot_id,
            definition=copy.deepcopy(definition),
            hash=self._new_hash(),
            root_view_id=below.root_view_id if below is not None else view_id,
            previous_view_id=below.id if below is not None else None,
            external_id=external_id,
            user_id=user_id,
        )
        self._views[view_id] = view
        return view

    def _find(self, view_id: str | None, external_id: str | None) -> View:
        """An open view by ID or external_id; Slack no longer finds a closed modal."""
        if view_id:
            view = self._views.get(view_id)
        else:
            view = next(
                (v for v in self._views.values() if external_id and v.external_id == external_id),
                None,
            )
        if view is None or view.closed:
            raise SlackError("not_found")
        return view

    def _new_hash(self) -> str:
        return f"{int(self._clock())}.{secrets.token_hex(4)}"
