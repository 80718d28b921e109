"""The connectors' tools, built once per worker process from settings."""

from __future__ import annotations

from connectors.credentials import CredentialStore, cipher_from_settings
from connectors.google.tools import google_tools
from connectors.hubspot.api import hubspot_service
from connectors.hubspot.tools import hubspot_tools
from connectors.rest import RetryPolicy, new_http_client
from connectors.sessions import session_for
from connectors.zendesk.api import zendesk_service
from connectors.zendesk.tools import zendesk_tools
from core.db import Pool
from core.settings import Settings
from core.tools import Tool, needing


def connector_tools(settings: Settings, pool: Pool) -> list[Tool]:
    """Every connector's tools, each marked with the connector it needs: the model is
    offered only those of connectors the tenant connected (review/toolbox.py); a call to
    another still gets a plain "not connected: ask an admin" instead of a result."""
    store = CredentialStore(pool, cipher_from_settings(settings))
    # One pooled HTTP client for the process, shared by the worker's threads.
    http = new_http_client(settings.connector_timeout_seconds)
    retry = RetryPolicy(
        max_retries=settings.connector_max_retries,
        max_retry_after=settings.connector_max_retry_after_seconds,
    )
    hubspot = session_for(hubspot_service(settings.hubspot_api_url), store, http, retry)
    zendesk = session_for(zendesk_service(settings.zendesk_api_url), store, http, retry)
    return [
        *needing("hubspot", hubspot_tools(hubspot)),
        *needing("zendesk", zendesk_tools(zendesk)),
        *google_tools(settings, store, retry),
    ]
