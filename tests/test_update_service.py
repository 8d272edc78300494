"""Self-update from inside the service: the web API (/api/update...), the detached apply it
starts, and the watch (an interrupted switch, the daily automatic update). The install is a
directory in the install layout (versions/, current) without a service; the whole life under
daemontools is tests/test_update_gx.py."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import sys
import time
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from phaeton.config import load_config
from phaeton.update.in_service import UpdateService
from phaeton.update.layout import Layout
from phaeton.update.pending import Pending, write_pending
from phaeton.web.app import create_web_app
from phaeton.web.passwords import hash_password

PASSWORD = "correct horse battery"
AUTH = {"Authorization": f"Bearer {PASSWORD}"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def install(tmp_path) -> SimpleNamespace:
    """PREFIX/data/phaeton with versions/0.1.0 and current -> it, and a config whose index
    is on a port where nothing listens."""
    layout = Layout.for_root(str(tmp_path))
    (layout.versions / "0.1.0").mkdir(parents=True)
    layout.point(layout.current, "0.1.0")
    config_path = layout.dest / "config.yaml"
    config_path.write_text(
        f"data_dir: {layout.dest}\n"
        "charger: {alfen: {host: 127.0.0.1}}\n"
        "web: {enabled: false}\n"
        f"update: {{url: 'http://127.0.0.1:{closed_port()}/releases', auto: true, "
        "window: '03:00-05:00'}\n")
    config = load_config(config_path)
    return SimpleNamespace(layout=layout, config=config, config_path=str(config_path),
                           status=layout.dest / "update-status.json")


async def client_for(updates) -> TestClient:
    backend = SimpleNamespace(updates=updates) if updates is not None else SimpleNamespace()
    app = create_web_app(backend, {"password_hash": hash_password(PASSWORD)})
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


async def test_without_an_updater_the_api_says_so():
    client = await client_for(None)
    try:
        state = await (await client.get("/api/update")).json()
        assert state["unavailable"] == "self-update is not available from this service"
        response = await client.post("/api/update/check", headers=AUTH)
        assert response.status == 503
        assert "not available" in (await response.json())["error"]
    finally:
        await client.close()


async def test_the_state_a_check_offline_and_writes_need_the_login(install):
    client = await client_for(UpdateService(install.config, install.config_path, install.layout))
    try:
        state = await (await client.get("/api/update")).json()
        assert state["installed"] and state["current"] == "0.1.0" and state["previous"] is None
        assert state["channel"] == "stable" and state["key_configured"] is False
        assert state["unavailable"] is None and state["busy"] is None
        for url in ("/api/update/check", "/api/update/apply", "/api/update/rollback"):
            assert (await client.post(url)).status == 401, url
        checked = await (await client.post("/api/update/check", headers=AUTH)).json()
        assert checked["ok"] is False and "refused (offline" in checked["message"]
        assert (await (await client.get("/api/update")).json())["last_check"]["ok"] is False
        assert sorted(os.listdir(install.layout.versions)) == ["0.1.0"]      # nothing changed
        answer = await client.post("/api/update/apply", json={"version": 2}, headers=AUTH)
        assert answer.status == 422
    finally:
        await client.close()


async def test_apply_runs_detached_and_reports_through_the_status_file(install):
    updates = UpdateService(install.config, install.config_path, install.layout,
                            python=sys.executable)
    client = await client_for(updates)
    try:
        answer = await client.post("/api/update/apply", json={}, headers=AUTH)
        assert answer.status == 202, await answer.text()
        pid = (await answer.json())["pid"]
        deadline = time.monotonic() + 60
        while True:
            state = await (await client.get("/api/update")).json()
            if state["progress"].get("state") == "failed":
                break
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.2)
        assert state["progress"]["trigger"] == "web" and state["busy"] is None
        assert "no update.public_key is configured" in state["progress"]["message"]
        assert json.loads(install.status.read_text())["pid"] == pid
        assert sorted(os.listdir(install.layout.versions)) == ["0.1.0"]
    finally:
        await client.close()


async def test_one_run_at_a_time_and_none_where_self_update_is_not_possible(install):
    install.status.write_text(json.dumps({"state": "downloading", "action": "apply",
                                          "pid": os.getpid()}))
    client = await client_for(UpdateService(install.config, install.config_path, install.layout))
    try:
        answer = await client.post("/api/update/rollback", headers=AUTH)
        assert answer.status == 409
        assert f"an update apply is running (pid {os.getpid()})" in (await answer.json())["error"]
    finally:
        await client.close()
    not_installed = UpdateService(install.config, install.config_path,
                                  Layout.for_root(str(install.layout.dest / "elsewhere")))
    client = await client_for(not_installed)
    try:
        answer = await client.post("/api/update/apply", json={}, headers=AUTH)
        assert answer.status == 409 and "self-update is not available" in \
            (await answer.json())["error"]
        assert "not installed by install.sh" in \
            (await (await client.get("/api/update")).json())["unavailable"]
    finally:
        await client.close()


@pytest.fixture
def recorder(tmp_path) -> SimpleNamespace:
    """A stand-in for the Python the service starts: records its arguments and ends."""
    calls = tmp_path / "calls"
    script = tmp_path / "fake-python"
    script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    script.chmod(0o755)
    return SimpleNamespace(python=str(script), calls=calls)


def _wait_for_calls(recorder, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while True:
        lines = recorder.calls.read_text().splitlines() if recorder.calls.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_the_watch_recovers_an_interrupted_switch(install, recorder):
    updates = UpdateService(install.config, install.config_path, install.layout,
                            python=recorder.python)
    write_pending(install.layout.pending, Pending("0.2.0", "0.1.0", None, os.getpid(),
                                                  time.time()))
    assert updates.watch_once(dt.datetime(2026, 5, 2, 12, 0)) is None   # its process runs
    write_pending(install.layout.pending, Pending("0.2.0", "0.1.0", None, 2**22 + 17,
                                                  time.time()))
    assert updates.watch_once(dt.datetime(2026, 5, 2, 12, 0)) == "recover"
    [call] = _wait_for_calls(recorder, 1)
    assert call == (f"-m phaeton update recover --config {install.config_path} "
                    f"--root {install.layout.root}")


def test_the_automatic_update_starts_once_per_window(install, recorder):
    updates = UpdateService(install.config, install.config_path, install.layout,
                            python=recorder.python)
    assert updates.watch_once(dt.datetime(2026, 5, 2, 12, 0)) is None      # outside
    assert updates.watch_once(dt.datetime(2026, 5, 2, 3, 10)) == "apply"
    _wait_for_calls(recorder, 1)
    install.status.write_text(json.dumps({**json.loads(install.status.read_text()),
                                          "state": "up_to_date"}))
    assert updates.watch_once(dt.datetime(2026, 5, 2, 4, 50)) is None      # done today
    assert updates.watch_once(dt.datetime(2026, 5, 3, 3, 0)) == "apply"
    calls = _wait_for_calls(recorder, 2)
    assert calls[0].startswith("-m phaeton update apply --config ") and \
        calls[0].endswith("--trigger auto")
    assert len(calls) == 2


def test_a_second_apply_leaves_the_first_ones_progress_alone(install):
    from phaeton.update.engine import UpdateContext, apply, exclusive
    from phaeton.update.settings import UpdateSettings

    install.status.write_text(json.dumps({"state": "downloading", "message": "first"}))
    ctx = UpdateContext(install.layout, UpdateSettings.from_config(install.config),
                        install.config_path)
    with exclusive(install.layout):                     # the first apply holds the lock
        outcome = apply(ctx)
    assert outcome.code == 1
    assert outcome.message == "apply not started: another update, rollback or recover is running"
    assert json.loads(install.status.read_text()) == {"state": "downloading", "message": "first"}
