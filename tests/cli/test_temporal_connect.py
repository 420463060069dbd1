"""How every process connects to Temporal: plain for the dev server, TLS and an API key for
Temporal Cloud, mTLS with client certificates, a CA for a self-hosted TLS cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from journeyman.settings import Settings
from journeyman.temporal import connect, connect_options


def test_the_dev_server_needs_neither_tls_nor_a_key() -> None:
    options = connect_options(Settings(temporal_namespace="journeys"))
    assert options["namespace"] == "journeys"
    assert "tls" not in options and "api_key" not in options


def test_an_api_key_goes_over_tls() -> None:
    options = connect_options(Settings(temporal_api_key="cloud-key"))
    assert (options["api_key"], options["tls"]) == ("cloud-key", True)


def test_tls_alone_verifies_with_the_system_roots() -> None:
    assert connect_options(Settings(temporal_tls=True))["tls"] is True


def test_client_certificates_are_mtls_read_at_start_up(tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca")}
    for name, path in files.items():
        path.write_bytes(f"-----BEGIN {name.upper()}-----".encode())
    settings = Settings(
        temporal_tls_cert_path=files["cert"],
        temporal_tls_key_path=files["key"],
        temporal_tls_ca_path=files["ca"],
    )
    tls = connect_options(settings)["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"-----BEGIN CERT-----"
    assert tls.client_private_key == b"-----BEGIN KEY-----"
    assert tls.server_root_ca_cert == b"-----BEGIN CA-----"


def test_a_certificate_without_its_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="TLS_CERT_PATH and JOURNEYMAN_TEMPORAL_TLS_KEY"):
        Settings(temporal_tls_cert_path=Path("/etc/client.pem"))


def test_a_missing_certificate_file_names_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    settings = Settings(temporal_tls_cert_path=missing, temporal_tls_key_path=missing)
    with pytest.raises(FileNotFoundError, match=r"nope\.pem"):
        connect_options(settings)


async def test_tls_to_a_server_without_it_fails_to_connect(dev_env: WorkflowEnvironment) -> None:
    """The options reach the connection: a TLS handshake with the plain dev server fails."""
    address = dev_env.client.service_client.config.target_host
    with pytest.raises(RuntimeError):
        await connect(Settings(temporal_address=address, temporal_tls=True))
    plain = await connect(Settings(temporal_address=address))
    assert plain.namespace == "default"
