"""The cars' secrets in the web UI's config editor: a Tesla refresh token, an app secret, a
Home Assistant token and a broker password never leave the service, and a save of the page's
config (with the placeholders) keeps each car's own secrets, also when the cars were
reordered."""
from __future__ import annotations

import yaml

from tests.web_fixtures import backend, client, config_and_version, login  # noqa: F401

CARS = [
    {"name": "model3", "soc": {"source": "tesla", "tesla": {
        "vin": "5YJ3E7EB0KF000001", "client_id": "app-id", "client_secret": "app-secret-1",
        "refresh_token": "tesla-refresh-1"}}},
    {"name": "zoe", "soc": {"source": "http", "http": {
        "url": "http://ha.local:8123/api/states/sensor.zoe", "field": "state",
        "bearer_token": "ha-token-2"}}},
    {"name": "ioniq", "soc": {"source": "mqtt", "mqtt": {
        "topic": "cars/ioniq/soc", "username": "car", "password": "broker-pass-3"}}},
]
SECRETS = ("app-secret-1", "tesla-refresh-1", "ha-token-2", "broker-pass-3")


async def test_car_secrets_stay_in_the_service_and_survive_a_reordering_save(client, backend):
    data = yaml.safe_load(backend.config_file.read_text())
    data["vehicles"] = CARS
    backend.config_file.write_text(yaml.safe_dump(data))
    text = await (await client.get("/api/config")).text()
    assert not [secret for secret in SECRETS if secret in text]
    config, version = await config_and_version(client)
    tesla = config["vehicles"][0]["soc"]["tesla"]
    assert tesla["refresh_token"] == "(unchanged)" and tesla["vin"] == "5YJ3E7EB0KF000001"

    config["vehicles"] = [config["vehicles"][2], config["vehicles"][0], config["vehicles"][1]]
    config["vehicles"][0]["stale_after_s"] = 1800
    response = await client.put("/api/config", json={"config": config, "version": version},
                                headers=await login(client))
    assert response.status == 200, await response.text()
    saved = {car["name"]: car for car in yaml.safe_load(backend.config_file.read_text())
             ["vehicles"]}
    assert saved["model3"]["soc"]["tesla"]["refresh_token"] == "tesla-refresh-1"
    assert saved["model3"]["soc"]["tesla"]["client_secret"] == "app-secret-1"
    assert saved["zoe"]["soc"]["http"]["bearer_token"] == "ha-token-2"
    assert saved["ioniq"]["soc"]["mqtt"]["password"] == "broker-pass-3"
    assert saved["ioniq"]["stale_after_s"] == 1800
