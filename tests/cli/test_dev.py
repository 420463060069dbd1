"""`journeyman dev` as a person runs it: it starts everything, answers, stops clean, resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus

from journeyman.ports import free_ports, port_is_free
from tests.conftest import binary
from workflows.contracts import SEARCH_ATTRIBUTES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
AUTH = {"Authorization": "Bearer dev-key"}


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc (children run in their own groups)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # Field 4, after the parenthesised command name (which may contain spaces).
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class DevProcess:
    def __init__(self, data_dir: Path, ports: dict[str, int]) -> None:
        self.ports = ports
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [binary("journeyman"), "dev", "--data-dir", str(data_dir),
             "--api-port", str(ports["api"]), "--temporal-port", str(ports["temporal"]),
             "--ui-port", str(ports["ui"]), "--smtp-port", str(ports["smtp"])],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )  # fmt: skip
        # Drain the pipe the whole time: the children share it and would block on a full one.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    @property
    def text(self) -> str:
        return "".join(self.output)

    def wait_until_running(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while "Journeyman is running" not in self.text:
            if self.process.poll() is not None:
                pytest.fail(f"journeyman dev exited with {self.process.returncode}:\n{self.text}")
            if time.monotonic() > deadline:
                pytest.fail(f"journeyman dev did not start in {START_TIMEOUT}s:\n{self.text}")
            time.sleep(0.2)

    def stop(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"journeyman dev did not stop in {STOP_TIMEOUT}s:\n{self.text}")

    def kill_everything(self) -> None:
        for pid in descendants(self.process.pid) | {self.process.pid}:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@contextmanager
def running_dev(data_dir: Path, ports: dict[str, int]) -> Iterator[DevProcess]:
    dev = DevProcess(data_dir, ports)
    try:
        dev.wait_until_running()
        yield dev
    finally:
        if dev.process.poll() is None:
            dev.kill_everything()


def assert_stops_clean(dev: DevProcess, signum: signal.Signals) -> None:
    children = descendants(dev.process.pid)
    # The Temporal server, the SMTP sink, the worker and the API.
    assert len(children) >= 4, dev.text
    assert dev.stop(signum) == 0, dev.text
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)], dev.text
    busy = [port for port in dev.ports.values() if not port_is_free(port)]
    assert not busy, f"ports still bound after stop: {busy}"


async def test_dev_runs_the_stack_stops_on_signals_and_resumes_its_data(tmp_path: Path) -> None:
    api_port, temporal_port, ui_port, smtp_port = free_ports(4)
    ports = {"api": api_port, "temporal": temporal_port, "ui": ui_port, "smtp": smtp_port}
    api = f"http://127.0.0.1:{api_port}"
    data_dir = tmp_path / "data"
    workflow_id = "journey:abandoned_cart:c-dev:cart-1"

    with running_dev(data_dir, ports) as dev:
        async with httpx.AsyncClient(base_url=api, headers=AUTH, timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200
            put = await http.put("/v1/contacts/c-dev", json={"email": "dev@example.com"})
            assert put.status_code in (200, 201), put.text
            posted = await http.post(
                "/v1/events",
                json={"id": "e-dev-1", "contact_id": "c-dev", "name": "cart_abandoned",
                      "properties": {"cart_id": "cart-1", "items": []}},
            )  # fmt: skip
            assert posted.status_code == 202, posted.text
        client = await Client.connect(f"127.0.0.1:{temporal_port}")
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        assert {key.name for key in SEARCH_ATTRIBUTES} <= set(listed.custom_attributes)
        assert f"http://localhost:{ui_port}" in dev.text
        assert str(data_dir.resolve() / "mail") in dev.text
        assert_stops_clean(dev, signal.SIGINT)

    # Everything is file-backed: a second start finds the enrollment still waiting.
    with running_dev(data_dir, ports) as dev:
        client = await Client.connect(f"127.0.0.1:{temporal_port}")
        described = await client.get_workflow_handle(workflow_id).describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
        async with httpx.AsyncClient(base_url=api, headers=AUTH, timeout=10) as http:
            journeys = (await http.get("/v1/contacts/c-dev/journeys")).json()
        assert [(j["workflow_id"], j["status"]) for j in journeys] == [(workflow_id, "active")]
        assert_stops_clean(dev, signal.SIGTERM)
