"""What `chatops ingest` and the ingestion jobs are given: paths (files and folders) and
Slack channels (`slack:C0123ABC`), and how each is read, stored and pruned."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from slack_sdk import WebClient

from connectors.slack.bot_tokens import bot_token_of
from core.db import Pool
from rag.collections import Collection
from rag.documents import LoadError
from rag.ingest import Ingestor, IngestStats
from rag.loaders.files import all_files, file_key, load_file
from rag.loaders.slack import channel_key_prefix, load_channel

log = structlog.get_logger(__name__)

SLACK_PREFIX = "slack:"


@dataclass(frozen=True)
class SlackAccess:
    client: WebClient
    team_id: str


# tenant id -> a client with the tenant's bot token
SlackAccessFor = Callable[[int], SlackAccess]


class SourceError(Exception):
    """A source given on the command line does not exist or cannot be used."""


def is_slack(spec: str) -> bool:
    return spec.startswith(SLACK_PREFIX)


def expand(specs: list[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The units of work (one file or one channel each) and, per folder, the prune scope:
    (key prefix, keys of the files still there)."""
    units: list[str] = []
    scopes: list[tuple[str, list[str]]] = []
    for spec in specs:
        if is_slack(spec):
            if not spec[len(SLACK_PREFIX) :]:
                raise SourceError(f"{spec!r}: name a channel id, e.g. slack:C0123ABC")
            units.append(spec)
            continue
        root = Path(spec)
        if not root.exists():
            raise SourceError(f"{spec}: no such file or folder")
        files = all_files([root])
        units.extend(str(p) for p in files)
        if root.is_dir():
            prefix = file_key(root).rstrip("/") + "/"
            scopes.append((prefix, [file_key(p) for p in files]))
    return list(dict.fromkeys(units)), scopes


def ingest_unit(
    ingestor: Ingestor,
    tenant_id: int,
    collection: Collection,
    spec: str,
    slack_access: SlackAccessFor | None,
) -> IngestStats:
    """Read, store and prune one file or channel; a source that cannot be read is recorded
    in the stats' failures (by name and reason) instead of raising."""
    stats = IngestStats()
    try:
        if is_slack(spec):
            if slack_access is None:
                raise LoadError("no Slack access configured")
            access = slack_access(tenant_id)
            channel = spec[len(SLACK_PREFIX) :]
            documents = load_channel(access.client, access.team_id, channel)
            prefix = channel_key_prefix(access.team_id, channel)
        else:
            path = Path(spec)
            documents = load_file(path)
            prefix = file_key(path) + "#"  # the threads of a mailbox, if any
    except LoadError as exc:
        log.warning("knowledge.source_skipped", source=spec, reason=str(exc))
        stats.failures.append((spec, str(exc)))
        return stats
    stats.merge(ingestor.ingest(tenant_id, collection, documents))
    stats.removed += ingestor.prune(
        tenant_id, collection, prefix, [d.source_key for d in documents]
    )
    return stats


def prune_folders(
    ingestor: Ingestor,
    tenant_id: int,
    collection: Collection,
    scopes: list[tuple[str, list[str]]],
) -> int:
    """Remove the documents of files deleted from the folders ingested."""
    return sum(ingestor.prune(tenant_id, collection, prefix, keep) for prefix, keep in scopes)


def resolve_tenant(pool: Pool, ref: str) -> int:
    """A tenant by Slack team id (T0123...), or by its numeric id."""
    with pool.connection() as conn:
        row = conn.execute("SELECT id FROM tenants WHERE slack_team_id = %s", (ref,)).fetchone()
        if row is None and ref.isdigit():
            row = conn.execute("SELECT id FROM tenants WHERE id = %s", (int(ref),)).fetchone()
    if row is None:
        raise SourceError(f"no tenant with Slack team id or id {ref!r}")
    tenant_id: int = row["id"]
    return tenant_id


def installation_slack_access(
    pool: Pool, make_client: Callable[[str], WebClient]
) -> SlackAccessFor:
    """Slack access with the bot token of the tenant's newest installation."""

    def access(tenant_id: int) -> SlackAccess:
        with pool.connection() as conn:
            row = conn.execute(
                """SELECT tenant_id, team_id, bot_token, bot_token_sealed FROM slack_installations
                   WHERE tenant_id = %s ORDER BY installed_at DESC LIMIT 1""",
                (tenant_id,),
            ).fetchone()
        if row is None:
            raise LoadError("the tenant has no Slack installation")
        token = bot_token_of(row)
        if token is None:
            raise LoadError("the tenant's Slack installation has no bot token")
        return SlackAccess(make_client(token), row["team_id"])

    return access
