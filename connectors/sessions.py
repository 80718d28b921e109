"""A tenant's API client for one connector, from its stored credential.

Tools receive a `Session` (tenant id -> RestClient) rather than a token, so the token is
read, decrypted and turned into headers only at the moment of a call, and a tenant that
never connected the service gets a plain sentence telling an admin what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from connectors.credentials import Credential, CredentialStore
from connectors.rest import ConnectorError, RestClient, RetryPolicy

Session = Callable[[int], RestClient]


@dataclass(frozen=True)
class Service:
    name: str  # as `/agent connect` spells it: "hubspot"
    title: str  # as people know it: "HubSpot"
    base_url: Callable[[Credential], str]
    auth_headers: Callable[[Credential], Mapping[str, str]]


def session_for(
    service: Service, store: CredentialStore, http: httpx.Client, retry: RetryPolicy
) -> Session:
    def client(tenant_id: int) -> RestClient:
        credential = store.load(tenant_id, service.name)
        if credential is None:
            raise ConnectorError(
                f"{service.title} is not connected for this workspace: an admin can run "
                f"`/agent connect {service.name}` to set it up"
            )
        return RestClient(
            http=http,
            service=service.title,
            connector=service.name,
            base_url=service.base_url(credential),
            auth_headers=service.auth_headers(credential),
            retry=retry,
        )

    return client
