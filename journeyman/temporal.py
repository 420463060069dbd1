"""Connecting to Temporal, and the search attributes every enrollment relies on.

An enrollment whose start names an unregistered search attribute is refused by the server, so
every process that talks to Temporal can make sure they exist before it does anything else.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.service import TLSConfig

from journeyman.payloads import journeyman_data_converter
from journeyman.redaction import redacting_data_converter
from journeyman.settings import Settings
from journeyman.tracing import temporal_plugins
from workflows.contracts import SEARCH_ATTRIBUTES

log = logging.getLogger(__name__)

# Long enough for a server starting beside us (compose, `journeyman dev`) to come up.
CONNECT_PATIENCE = timedelta(seconds=60)

# How `temporal server start-dev --search-attribute NAME=TYPE` spells each type.
_CLI_TYPE_NAMES = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


def search_attribute_flags() -> list[str]:
    """`NAME=Type` for each attribute, as the Temporal CLI's `--search-attribute` wants it."""
    return [f"{key.name}={_CLI_TYPE_NAMES[key.indexed_value_type]}" for key in SEARCH_ATTRIBUTES]


def connect_options(settings: Settings) -> dict[str, Any]:
    """`Client.connect`'s keyword arguments from the settings, for every process.

    With tracing on, the OpenTelemetry plugin: on the client, it also traces the workflows and
    activities of every worker built from it. An API key (Temporal Cloud) travels as a bearer
    token, over TLS; client certificates are mTLS. The PEM files are read here, at start-up,
    so a missing one stops the process with its path. Failures are scrubbed of addresses,
    numbers and these settings' secrets before they reach a history (`journeyman.redaction`);
    dataclasses are encoded without the SDK's deep copy (`journeyman.payloads`).
    """
    options: dict[str, Any] = {
        "namespace": settings.temporal_namespace,
        "plugins": temporal_plugins(settings),
        "data_converter": redacting_data_converter(settings, journeyman_data_converter()),
    }
    if settings.temporal_api_key:
        options["api_key"] = settings.temporal_api_key
    paths = (
        settings.temporal_tls_cert_path,
        settings.temporal_tls_key_path,
        settings.temporal_tls_ca_path,
    )
    if any(paths):
        cert, key, ca = (path.read_bytes() if path else None for path in paths)
        options["tls"] = TLSConfig(client_cert=cert, client_private_key=key, server_root_ca_cert=ca)
    elif settings.temporal_tls or settings.temporal_api_key:
        options["tls"] = True
    return options


async def connect(settings: Settings) -> Client:
    return await Client.connect(settings.temporal_address, **connect_options(settings))


async def connect_when_ready(settings: Settings) -> Client:
    """Connect, retrying while the server is still starting.

    Processes start together (compose, `journeyman dev`); waiting here is kinder than a
    crash loop, and still fails with the server's own error once `CONNECT_PATIENCE` is over.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_PATIENCE.total_seconds()
    while True:
        try:
            return await connect(settings)
        except RuntimeError as err:
            if loop.time() >= deadline:
                raise RuntimeError(
                    f"Temporal at {settings.temporal_address} did not answer within "
                    f"{CONNECT_PATIENCE.total_seconds():.0f}s: {err}"
                ) from err
            await asyncio.sleep(0.25)


async def missing_search_attributes(client: Client, namespace: str) -> list[str]:
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return [key.name for key in SEARCH_ATTRIBUTES if key.name not in listed.custom_attributes]


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register whichever of Journeyman's search attributes are missing; returns their names.

    Idempotent, so every worker start may call it; on a cluster whose operators registered
    them already (docker compose does) it only lists them.
    """
    missing = set(await missing_search_attributes(client, namespace))
    if not missing:
        return []
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
                for key in SEARCH_ATTRIBUTES
                if key.name in missing
            },
        )
    )
    log.info("Registered search attributes %s in namespace %s", sorted(missing), namespace)
    return sorted(missing)
