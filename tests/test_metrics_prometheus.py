"""A real Prometheus scraping a running phaeton on the scripted simulated GX (real D-Bus, the
Alfen simulator, phaeton's web server on a free port), read back through Prometheus's query
API; and /metrics with /health of the running service while its charger goes offline.

Debian's `prometheus` package provides the binary (dev/test installs it); without it the
Prometheus test is skipped, saying so."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time

import aiohttp
import pytest

from scripted_gx import ScriptedGx
from tests.test_metrics import parse, value

pytestmark = pytest.mark.slow

PROMETHEUS = shutil.which("prometheus")
SCRAPE_S = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def gx(private_bus, tmp_path):
    port = free_port()
    async with ScriptedGx(private_bus, str(tmp_path),
                          web={"enabled": True, "host": "127.0.0.1", "port": port},
                          carbon={"source": "static", "static": {"g_per_kwh": 400}}) as world:
        world.web_url = f"http://127.0.0.1:{port}"
        yield world


class Prometheus:
    """Its own prometheus process on a free port, with a temp config and data directory,
    scraping `target` every second. `stop()` ends it (and waits for it)."""

    def __init__(self, directory: str, target: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        os.makedirs(directory, exist_ok=True)
        config = os.path.join(directory, "prometheus.yml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f"""global:
  scrape_interval: {SCRAPE_S}s
  evaluation_interval: {SCRAPE_S}s
scrape_configs:
  - job_name: phaeton
    scrape_interval: {SCRAPE_S}s
    scrape_timeout: {SCRAPE_S}s
    metrics_path: /metrics
    static_configs:
      - targets: ["{target}"]
""")
        self.log_path = os.path.join(directory, "prometheus.log")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(directory, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-3000:]

    async def wait_ready(self, http: aiohttp.ClientSession, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"prometheus exited: {self.log()}"
            try:
                async with http.get(self.url + "/-/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"prometheus not ready: {self.log()}")

    async def query(self, http: aiohttp.ClientSession, expr: str) -> list[dict]:
        async with http.get(self.url + "/api/v1/query", params={"query": expr}) as response:
            body = await response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    async def value_when(self, http: aiohttp.ClientSession, expr: str, predicate,
                         timeout_s: float = 30) -> float:
        """The query's one value once `predicate(value)` holds (scrapes take their time)."""
        deadline = time.monotonic() + timeout_s
        seen = None
        while time.monotonic() < deadline:
            result = await self.query(http, expr)
            if len(result) == 1:
                seen = float(result[0]["value"][1])
                if predicate(seen):
                    return seen
            await asyncio.sleep(0.25)
        raise AssertionError(f"{expr}: last value {seen}; prometheus log: {self.log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()


@pytest.mark.skipif(PROMETHEUS is None,
                    reason="the prometheus binary is missing (Debian package prometheus; "
                           "dev/test installs it)")
async def test_prometheus_scrapes_phaeton_and_reads_back_what_the_pages_show(gx, tmp_path):
    """The session's energy and CO2, the charger's setpoint, current and status: what
    Prometheus stored from its scrapes equals what the web pages show."""
    app = await gx.start_phaeton()
    prometheus = Prometheus(str(tmp_path / "prometheus"), gx.web_url.removeprefix("http://"))
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await prometheus.wait_ready(http)
            await prometheus.value_when(http, 'up{job="phaeton"}', lambda v: v == 1)

            gx.alfen.plug_in()                                   # Manual, started, 16 A
            await gx.until(lambda: gx.alfen.applied_current_a == 16, 30, "charging at 16 A")
            setpoint = await prometheus.value_when(
                http, 'phaeton_charger_setpoint_amperes{charger="0"}', lambda v: v == 16)
            async with http.get(gx.web_url + "/api/status") as response:
                status = await response.json()
            assert setpoint == gx.alfen.applied_current_a == 16
            assert await prometheus.value_when(
                http, 'phaeton_charger_set_current_amperes{charger="0"}',
                lambda v: v == status["set_current_a"]) == 16
            assert await prometheus.value_when(
                http, 'phaeton_charger_status{charger="0"}',
                lambda v: v == status["status_code"]) == 2
            measured = await prometheus.value_when(
                http, 'phaeton_charger_current_amperes{charger="0"}', lambda v: v > 0)
            assert measured == pytest.approx(16, abs=0.5)
            assert await prometheus.value_when(
                http, 'phaeton_charger_connected{charger="0"}', lambda v: True) == 1

            await gx.run_for(300)
            gx.alfen.plug_out()
            await gx.until(lambda: app.loadpoints[0].evcharger.service["/Status"] == 0, 30,
                           "the session to end")
            async with http.get(gx.web_url + "/api/sessions") as response:
                page = await response.json()
            assert len(page["sessions"]) == 1
            energy = page["sessions"][0]["energy_kwh"]
            assert energy > 0.5
            got = await prometheus.value_when(
                http, 'phaeton_sessions_finished_energy_kwh{charger="0"}',
                lambda v: v == energy)
            assert got == energy == page["totals"]["energy_kwh"]
            assert await prometheus.value_when(
                http, 'phaeton_sessions_finished{charger="0"}', lambda v: v == 1) == 1
            # its CO2 too (static 400 g/kWh, no PV: every kWh from the grid)
            co2 = page["sessions"][0]["co2_kg"]
            assert co2 == pytest.approx(energy * 0.4, rel=0.02)
            got = await prometheus.value_when(
                http, 'phaeton_sessions_finished_co2_kg{charger="0"}',
                lambda v: v == pytest.approx(co2, abs=1e-9))
            assert got == pytest.approx(co2, abs=1e-9)
            # the EV counter integrated from the ticks' power never counts more than the
            # session's energy (it may count less on a loaded machine: at 20x speed a tick late
            # by 3 real seconds is a gap of more than MAX_GAP_S, which is not integrated)
            ev_counter = await prometheus.value_when(
                http, 'phaeton_charger_energy_kwh_total{charger="0"}', lambda v: v > 0)
            assert ev_counter <= energy * 1.1 + 0.01
            # every scrape parsed: no failed scrape and the tick histogram is there
            assert await prometheus.value_when(http, 'up{job="phaeton"}', lambda v: True) == 1
            assert await prometheus.value_when(
                http, "phaeton_control_tick_duration_seconds_count", lambda v: v > 0) > 0
    finally:
        prometheus.stop()
    assert prometheus.process.poll() is not None


async def test_a_charger_going_offline_shows_in_metrics_and_health(gx):
    app = await gx.start_phaeton()
    gx.alfen.plug_in()
    await gx.until(lambda: gx.alfen.applied_current_a == 16, 30, "charging")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        async def health() -> tuple[int, dict]:
            async with http.get(gx.web_url + "/health") as response:
                return response.status, await response.json()

        async def metrics() -> dict:
            async with http.get(gx.web_url + "/metrics") as response:
                assert response.status == 200
                return parse(await response.text())[0]

        async def until_ready() -> dict:
            """200 from /health, retried for a while (a loaded machine may see the sped-up GX
            readings go stale for a moment)."""
            code, body = await health()
            for _ in range(200):
                if code == 200:
                    break
                await gx.run_for(0.5)
                code, body = await health()
            assert code == 200, body
            return body

        body = await until_ready()
        assert set(body["checks"]) == {"control_loop", "dbus", "chargers", "gx_readings",
                                       "planner"}
        samples = await metrics()
        assert value(samples, "phaeton_charger_connected", charger="0") == 1
        assert value(samples, "phaeton_ready") == 1

        await gx.alfen.stop()
        await gx.until(lambda: app.status()["charger"]["connected"] is False, 60,
                       "the charger to go offline")
        code, body = await health()
        assert code == 503 and "chargers" in body["failed"], body
        assert "charger '0' not connected" in body["checks"]["chargers"]["detail"]
        samples = await metrics()
        assert value(samples, "phaeton_charger_connected", charger="0") == 0
        assert value(samples, "phaeton_health_check", check="chargers") == 0
        assert value(samples, "phaeton_charger_power_watts", charger="0") is None
        assert value(samples, "phaeton_dbus_name_owned", charger="0") == 1

        await gx.alfen.start()
        await gx.until(lambda: app.status()["charger"]["connected"] is True, 120, "reconnect")
        await until_ready()
