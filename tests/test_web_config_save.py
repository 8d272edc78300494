"""Saving the config through the web API keeps the user's file: comments, keys, order and
hand edits; a save over a file that changed since it was read is refused (409).

Real server on loopback, real HTTP client, a real config file on disk.
"""
from __future__ import annotations

import pytest
import yaml

from phaeton.cli import main as phaeton_main
from phaeton.config import load_config
from tests.web_backend_for_tests import WebBackendForTests
from tests.web_fixtures import PASSWORD, config_and_version, login, start_client

COMMENTED = """\
# Our GX in the garage. Ask before raising the fuse!
charger:
  alfen:
    host: 127.0.0.1       # the wallbox by the door
  max_current_a: 16

site:
  fuse_a: 25              # main fuse (A)
  phases: 3

# added by hand in March
session:
  currency: EUR           # until we move
  price_per_kwh: 0.25

schedule:
  windows:                # cheap night rate
    - days: [mon, tue, wed, thu, fri]
      start: "22:00"      # local time
      end: "06:00"
"""


@pytest.fixture
async def backend(private_bus, tmp_path):
    (tmp_path / "config.yaml").write_text(COMMENTED, encoding="utf-8")
    made = await WebBackendForTests.create(tmp_path, bus_address=private_bus)
    yield made
    await made.close()


@pytest.fixture
async def client(backend):
    made = await start_client(backend)
    yield made
    await made.close()


def _file(backend) -> str:
    return backend.config_file.read_text(encoding="utf-8")


async def test_a_save_changes_one_line_and_keeps_comments_keys_and_order(client, backend):
    headers = await login(client)
    config, version = await config_and_version(client)
    config["site"]["fuse_a"] = 32
    response = await client.put("/api/config", json={"config": config, "version": version},
                                headers=headers)
    assert response.status == 200, await response.text()
    assert _file(backend) == COMMENTED.replace("  fuse_a: 25              # main fuse (A)",
                                               "  fuse_a: 32              # main fuse (A)")
    assert backend.config()["site"]["fuse_a"] == 32
    assert (await response.json())["version"] == (await config_and_version(client))[1]
    assert phaeton_main(["check-config", str(backend.config_file)]) == 0


async def test_a_save_over_a_file_changed_since_the_get_is_409_and_changes_nothing(client,
                                                                                    backend):
    headers = await login(client)
    config, version = await config_and_version(client)
    config["site"]["fuse_a"] = 32
    hand_edited = COMMENTED.replace("price_per_kwh: 0.25", "price_per_kwh: 0.19")
    backend.config_file.write_text(hand_edited, encoding="utf-8")
    response = await client.put("/api/config", json={"config": config, "version": version},
                                headers=headers)
    assert response.status == 409
    body = await response.json()
    assert "changed since it was read" in body["error"] and "nothing was saved" in body["error"]
    assert body["version"] != version
    assert _file(backend) == hand_edited
    assert not backend.config_file.with_name("config.yaml.bak").exists()
    # reloaded, the form shows the hand edit, and saving keeps it
    config, version = await config_and_version(client)
    assert config["session"]["price_per_kwh"] == 0.19
    config["site"]["fuse_a"] = 32
    response = await client.put("/api/config", json={"config": config}, headers={
        **headers, "If-Match": f'"{version}"'})
    assert response.status == 200, await response.text()
    assert load_config(backend.config_file).session.price_per_kwh == 0.19
    assert load_config(backend.config_file).site.fuse_a == 32


async def test_a_save_without_a_version_is_refused(client, backend):
    headers = await login(client)
    config, _ = await config_and_version(client)
    response = await client.put("/api/config", json={"config": config}, headers=headers)
    assert response.status == 428
    assert "version" in (await response.json())["error"]
    assert _file(backend) == COMMENTED


async def test_the_form_shows_the_file_and_a_save_keeps_edits_made_while_running(client,
                                                                                  backend):
    """phaeton loaded the file at start; someone edited it by hand since (no restart)."""
    headers = await login(client)
    hand_edited = COMMENTED.replace("fuse_a: 25 ", "fuse_a: 20 ")
    backend.config_file.write_text(hand_edited, encoding="utf-8")
    response = await client.get("/api/config")
    assert response.headers["ETag"] == f'"{(await response.json())["version"]}"'
    config, version = await config_and_version(client)
    assert config["site"]["fuse_a"] == 20  # the file, not the running copy (25)
    config["session"]["currency"] = "CHF"
    config["charger"]["safe_current_a"] = 8
    response = await client.put("/api/config", json={"config": config, "version": version},
                                headers=headers)
    assert response.status == 200, await response.text()
    assert _file(backend) == hand_edited.replace(
        "  currency: EUR           # until we move",
        "  currency: CHF           # until we move").replace(
        "  max_current_a: 16\n", "  max_current_a: 16\n  safe_current_a: 8\n")
    assert backend.config()["site"]["fuse_a"] == 20  # now running too


async def test_a_file_that_does_not_load_is_named_and_the_form_falls_back(client, backend):
    broken = COMMENTED.replace("fuse_a: 25 ", "fuse_a: 2000 ")
    backend.config_file.write_text(broken, encoding="utf-8")
    data = await (await client.get("/api/config")).json()
    assert data["config"]["site"]["fuse_a"] == 25  # the running config
    assert any("site.fuse_a" in problem for problem in data["file_problems"])
    headers = await login(client)
    data["config"]["session"]["currency"] = "CHF"
    response = await client.put("/api/config", headers=headers,
                                json={"config": data["config"], "version": data["version"]})
    assert response.status == 200, await response.text()
    assert _file(backend) == broken.replace("fuse_a: 2000 ", "fuse_a: 25   ").replace(
        "currency: EUR ", "currency: CHF ")  # the broken value fixed, its comment in place


async def test_the_schedule_save_keeps_the_file_and_checks_its_version(client, backend):
    headers = await login(client)
    got = await (await client.get("/api/schedule")).json()
    assert got["windows"][0]["start"] == "22:00"
    windows = got["windows"]
    windows[0]["end"] = "05:30"
    response = await client.put("/api/schedule", headers=headers,
                                json={"windows": windows, "version": got["version"]})
    assert response.status == 200, await response.text()
    assert _file(backend) == COMMENTED.replace('end: "06:00"', 'end: "05:30"')
    # a second page still holding the old version cannot overwrite that
    windows[0]["end"] = "04:00"
    response = await client.put("/api/schedule", headers=headers,
                                json={"windows": windows, "version": got["version"]})
    assert response.status == 409
    assert _file(backend) == COMMENTED.replace('end: "06:00"', 'end: "05:30"')


async def test_a_password_change_keeps_the_file(client, backend):
    headers = await login(client)
    response = await client.post("/api/password", headers=headers, json={
        "current_password": PASSWORD, "new_password": "another long one"})
    assert response.status == 200, await response.text()
    text = _file(backend)
    stored = yaml.safe_load(text)["web"]["password_hash"]
    assert stored.startswith("scrypt$")
    assert text.startswith(COMMENTED)
    assert text[len(COMMENTED):] == f"web:\n  password_hash: {stored}\n"
