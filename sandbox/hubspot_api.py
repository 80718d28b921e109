"""A local emulator of the HubSpot CRM v3 endpoints the HubSpot connector calls.

Serves, with HubSpot's wire shapes: object search (POST /crm/v3/objects/{type}/search,
`query` and `filterGroups`, pages cut by `paging.next.after`), read
(GET /crm/v3/objects/{type}/{id}, `properties` and `associations`), create (notes with
their `associations`), update (PATCH, e.g. a deal's `dealstage`, checked against the
default pipeline), association listing (GET /crm/v3/objects/{type}/{id}/associations/
{toType}, paginated) and batch read. Requests need `Authorization: Bearer <token>`.

Faults can be injected: `fail_next(status, retry_after=..., after_commit=...)` makes the
next request answer an error (a 429 with Retry-After, a 5xx, a 401), optionally after
doing the write, which is what a timeout after HubSpot accepted it looks like. Every
request is logged (method, path and query; never headers) for tests to assert on.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.background import ApiEmulator, Fault

OBJECTS = "/crm/v3/objects/{type}"
OBJECT_TYPES = ("contacts", "companies", "deals", "notes")
DEFAULT_PROPERTIES = {
    "contacts": (
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    ),
    "companies": ("createdate", "domain", "hs_object_id", "hs_lastmodifieddate", "name"),
    "deals": (
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ),
    "notes": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
}
DEAL_STAGES = (  # the default sales pipeline's stage ids
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
)
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal", "notes": "note"}
SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT = 10, 200
ASSOCIATIONS_DEFAULT_LIMIT, ASSOCIATIONS_MAX_LIMIT = 500, 500


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class CrmObject:
    id: str
    type: str
    properties: dict[str, str | None]
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)

    def resource(self, wanted: list[str] | None = None) -> dict[str, Any]:
        names = list(DEFAULT_PROPERTIES[self.type]) + [
            n for n in wanted or [] if n not in DEFAULT_PROPERTIES[self.type]
        ]
        values = {
            "createdate": self.created_at,
            "hs_createdate": self.created_at,
            "lastmodifieddate": self.updated_at,
            "hs_lastmodifieddate": self.updated_at,
            **self.properties,
            "hs_object_id": self.id,
        }
        return {
            "id": self.id,
            "properties": {name: values.get(name) for name in names},
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archived": False,
        }


class HubSpotApiError(Exception):
    def __init__(
        self, status: int, category: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.category, self.message = status, category, message
        self.retry_after = retry_after

    def response(self) -> web.Response:
        headers = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else None
        body = {
            "status": "error",
            "message": self.message,
            "correlationId": str(uuid.uuid4()),
            "category": self.category,
        }
        return web.json_response(body, status=self.status, headers=headers)


class Crm:
    """One portal's records; every method is safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(101)
        self._objects: dict[tuple[str, str], CrmObject] = {}
        self._links: list[tuple[str, str, str, str]] = []  # from type/id, to type/id

    def add(
        self,
        object_type: str,
        properties: dict[str, str | None],
        associations: dict[str, list[str]] | None = None,
    ) -> CrmObject:
        with self._lock:
            record = CrmObject(str(next(self._ids)), object_type, dict(properties))
            self._objects[(object_type, record.id)] = record
            for to_type, ids in (associations or {}).items():
                for to_id in ids:
                    self._links.append((object_type, record.id, to_type, to_id))
                    self._links.append((to_type, to_id, object_type, record.id))
            return record

    def get(self, object_type: str, object_id: str) -> CrmObject:
        with self._lock:
            found = self._objects.get((object_type, object_id))
        if found is None:
            raise HubSpotApiError(404, "OBJECT_NOT_FOUND", "resource not found")
        return found

    def update(self, object_type: str, object_id: str, properties: dict[str, str]) -> CrmObject:
        record = self.get(object_type, object_id)
        with self._lock:
            record.properties.update(properties)
            record.updated_at = _now()
            return record

    def all(self, object_type: str) -> list[CrmObject]:
        with self._lock:
            return [o for (t, _), o in self._objects.items() if t == object_type]

    def associated(self, object_type: str, object_id: str, to_type: str) -> list[str]:
        with self._lock:
            return [
                to_id
                for (ft, fid, tt, to_id) in self._links
                if ft == object_type and fid == object_id and tt == to_type
            ]


class HubSpotEmulator(ApiEmulator):
    """The HubSpot CRM API for one portal on 127.0.0.1, served from a background thread."""

    def __init__(self, token: str = "pat-na1-emulator") -> None:  # noqa: S107  # a local fake
        self.token = token
        self.crm = Crm()
        super().__init__(self._app())

    @property
    def api_url(self) -> str:
        return self._server.url

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(OBJECTS + "/search", self._search)
        app.router.add_post(OBJECTS + "/batch/read", self._batch_read)
        app.router.add_get(OBJECTS + "/{id}/associations/{to_type}", self._associations)
        app.router.add_get(OBJECTS + "/{id}", self._read)
        app.router.add_patch(OBJECTS + "/{id}", self._update)
        app.router.add_post(OBJECTS, self._create)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        await self._record(request)
        try:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                raise HubSpotApiError(
                    401,
                    "INVALID_AUTHENTICATION",
                    "Authentication credentials not found. This API supports OAuth 2.0 "
                    "authentication and you can find more details at "
                    "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                )
            if request.match_info.get("type") not in OBJECT_TYPES:
                raise HubSpotApiError(400, "VALIDATION_ERROR", "Unable to infer object type")
            return await self._answer_or_fault(request, handler, _fault_error)
        except HubSpotApiError as exc:
            return exc.response()

    async def _search(self, request: web.Request) -> web.Response:
        object_type = request.match_info["type"]
        body = await _json(request)
        limit = min(int(body.get("limit") or SEARCH_DEFAULT_LIMIT), SEARCH_MAX_LIMIT)
        start = int(body.get("after") or 0)
        query = str(body.get("query") or "").lower()
        groups = body.get("filterGroups") or []
        found = [
            o
            for o in sorted(self.crm.all(object_type), key=lambda o: int(o.id))
            if (not query or any(query in str(v or "").lower() for v in o.properties.values()))
            and (not groups or any(_matches(o, g.get("filters") or []) for g in groups))
        ]
        page = found[start : start + limit]
        result: dict[str, Any] = {
            "total": len(found),
            "results": [o.resource(body.get("properties")) for o in page],
        }
        if start + limit < len(found):
            result["paging"] = {"next": {"after": str(start + limit)}}
        return web.json_response(result)

    async def _read(self, request: web.Request) -> web.Response:
        object_type, object_id = request.match_info["type"], request.match_info["id"]
        record = self.crm.get(object_type, object_id)
        resource = record.resource(_csv(request.query.get("properties")))
        associations = {}
        for to_type in _csv(request.query.get("associations")):
            ids = self.crm.associated(object_type, object_id, to_type)
            if ids:
                associations[to_type] = {
                    "results": [{"id": i, "type": _link_type(object_type, to_type)} for i in ids]
                }
        if associations:
            resource["associations"] = associations
        return web.json_response(resource)

    async def _create(self, request: web.Request) -> web.Response:
        object_type = request.match_info["type"]
        body = await _json(request)
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise HubSpotApiError(400, "VALIDATION_ERROR", "Invalid input JSON: no properties")
        if object_type == "notes" and not properties.get("hs_timestamp"):
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", "Property values were not valid: hs_timestamp is required"
            )
        links: dict[str, list[str]] = {}
        for association in body.get("associations") or []:
            to_id = str((association.get("to") or {}).get("id", ""))
            to_type = _association_target(association)
            self.crm.get(to_type, to_id)  # 404 for a record that does not exist
            links.setdefault(to_type, []).append(to_id)
        record = self.crm.add(object_type, properties, links)
        return web.json_response(record.resource(list(properties)), status=201)

    async def _update(self, request: web.Request) -> web.Response:
        object_type, object_id = request.match_info["type"], request.match_info["id"]
        body = await _json(request)
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise HubSpotApiError(400, "VALIDATION_ERROR", "Invalid input JSON: no properties")
        stage = properties.get("dealstage")
        if object_type == "deals" and stage is not None and stage not in DEAL_STAGES:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f'Property values were not valid: [{{"isValid":false,"message":"{stage} was '
                f'not one of the allowed options","name":"dealstage"}}]',
            )
        record = self.crm.update(object_type, object_id, properties)
        return web.json_response(record.resource(list(properties)))

    async def _associations(self, request: web.Request) -> web.Response:
        object_type, object_id = request.match_info["type"], request.match_info["id"]
        to_type = request.match_info["to_type"]
        self.crm.get(object_type, object_id)
        ids = self.crm.associated(object_type, object_id, to_type)
        limit = min(
            int(request.query.get("limit") or ASSOCIATIONS_DEFAULT_LIMIT), ASSOCIATIONS_MAX_LIMIT
        )
        start = int(request.query.get("after") or 0)
        result: dict[str, Any] = {
            "results": [
                {"id": i, "type": _link_type(object_type, to_type)}
                for i in ids[start : start + limit]
            ]
        }
        if start + limit < len(ids):
            after = str(start + limit)
            link = f"{self.api_url}{request.path}?after={after}&limit={limit}"
            result["paging"] = {"next": {"after": after, "link": link}}
        return web.json_response(result)

    async def _batch_read(self, request: web.Request) -> web.Response:
        object_type = request.match_info["type"]
        body = await _json(request)
        results = []
        for item in body.get("inputs") or []:
            try:
                results.append(
                    self.crm.get(object_type, str(item.get("id"))).resource(body.get("properties"))
                )
            except HubSpotApiError:
                continue  # HubSpot leaves missing ids out (and reports them as errors)
        started = _now()
        return web.json_response(
            {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now()}
        )


def _fault_error(fault: Fault) -> HubSpotApiError:
    if fault.status == 401:
        return HubSpotApiError(401, "INVALID_AUTHENTICATION", "The OAuth token used has expired")
    if fault.status == 429:
        return HubSpotApiError(
            429, "RATE_LIMITS", "You have reached your secondly limit.", fault.retry_after
        )
    return HubSpotApiError(fault.status, "INTERNAL_ERROR", "internal error", fault.retry_after)


def _matches(record: CrmObject, filters: list[dict[str, Any]]) -> bool:
    for condition in filters:
        value = str(record.properties.get(condition.get("propertyName", "")) or "")
        wanted = str(condition.get("value", ""))
        operator = condition.get("operator", "EQ")
        if operator == "EQ" and value.lower() != wanted.lower():
            return False
        if operator == "CONTAINS_TOKEN" and wanted.lower().strip("*") not in value.lower():
            return False
        if operator not in ("EQ", "CONTAINS_TOKEN"):
            raise HubSpotApiError(400, "VALIDATION_ERROR", f"unsupported operator {operator}")
    return True


def _association_target(association: dict[str, Any]) -> str:
    # HubSpot-defined association type ids from notes: 202 contact, 190 company, 214 deal.
    targets = {202: "contacts", 190: "companies", 214: "deals"}
    for kind in association.get("types") or []:
        target = targets.get(int(kind.get("associationTypeId", 0)))
        if target:
            return target
    raise HubSpotApiError(400, "VALIDATION_ERROR", "Invalid association type")


def _link_type(from_type: str, to_type: str) -> str:
    return f"{SINGULAR[from_type]}_to_{SINGULAR.get(to_type, to_type)}"


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HubSpotApiError(400, "VALIDATION_ERROR", "Invalid input JSON") from None
    if not isinstance(body, dict):
        raise HubSpotApiError(400, "VALIDATION_ERROR", "Invalid input JSON")
    return body
