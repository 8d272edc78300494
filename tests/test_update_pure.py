"""The pure parts of self-update: version order, the releases index and channels, the time
window, the health verdict, the pending marker, the layout's links."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from phaeton.update.health import Observation, WebAnswer, judge, wait_healthy
from phaeton.update.layout import Layout
from phaeton.update.pending import Pending, is_stale, read_pending, write_pending
from phaeton.update.releases import choose, newest, parse_index
from phaeton.update.settings import UpdateSettings, public_key_bytes
from phaeton.update.verify import VerifyError, parse_digest
from phaeton.update.version import parse_version
from phaeton.update.window import auto_update_due, parse_window, window_day

V = parse_version


# ---- versions -------------------------------------------------------------------------------

@pytest.mark.parametrize("low, high", [
    ("0.9.2", "0.10.0"), ("0.3.0b1", "0.3.0"), ("0.3.0a2", "0.3.0b1"), ("0.3.0b2", "0.3.0rc1"),
    ("0.3.0rc1", "0.3.0"), ("0.2.9", "0.3.0a1"), ("1.9", "1.10"), ("0.3.0b1", "0.3.0b10"),
    ("1.0.0", "1.0.1"), ("0.99.99", "1.0"),
])
def test_versions_are_ordered_by_number_and_prereleases_come_first(low, high):
    assert V(low) < V(high) and V(high) > V(low) and V(low) != V(high)


def test_trailing_zeros_and_a_tags_v_do_not_matter():
    assert V("1.0") == V("1.0.0") == V("v1.0.0") and hash(V("1.0")) == hash(V("1.0.0"))
    assert V("v0.2.0").text == "0.2.0"
    assert V("0.3.0b1").is_prerelease and not V("0.3.0").is_prerelease
    assert sorted(map(V, ["0.10.0", "0.3.0", "0.3.0b1", "0.9.2"])) == \
        list(map(V, ["0.3.0b1", "0.3.0", "0.9.2", "0.10.0"]))


@pytest.mark.parametrize("text", ["", "latest", "1.2.3-beta", "1.2.3.dev1", "1..2", "1.2.3+local",
                                  "nightly-2026-05-01"])
def test_other_version_shapes_are_refused_with_a_message(text):
    with pytest.raises(ValueError, match="not a version like 1.2.3"):
        V(text)


# ---- the index and channels -----------------------------------------------------------------

def _entry(tag, *, prerelease=False, draft=False, assets=True):
    version = tag.lstrip("v")
    names = [f"phaeton-{version}.tar.gz", f"phaeton-{version}.tar.gz.sha256",
             f"phaeton-{version}.tar.gz.sig"] if assets else []
    return {"tag_name": tag, "name": f"phaeton {version}", "draft": draft,
            "prerelease": prerelease, "published_at": "2026-05-01T12:00:00Z",
            "assets": [{"name": n, "browser_download_url": f"https://example.org/{n}",
                        "size": 123} for n in names]}


GITHUB_LIKE = [
    _entry("v0.4.0", draft=True),
    _entry("v0.3.0b1", prerelease=True),
    _entry("v0.10.0rc1"),                   # a pre-release version GitHub does not flag
    _entry("v0.9.2"),
    _entry("nightly"),                      # a tag that is not a version
    "not a release",
    _entry("v0.2.0", assets=False),
]


def test_the_index_is_read_as_github_lists_releases_and_odd_entries_are_skipped():
    index = parse_index(GITHUB_LIKE)
    assert [r.version.text for r in index.releases] == ["0.4.0", "0.3.0b1", "0.10.0rc1",
                                                         "0.9.2", "0.2.0"]
    assert len(index.skipped) == 2 and "nightly" in index.skipped[0]
    release = index.releases[3]
    tarball, digest, signature = release.bundle_assets()
    assert tarball.name == "phaeton-0.9.2.tar.gz" and tarball.size == 123
    assert signature.url == "https://example.org/phaeton-0.9.2.tar.gz.sig"
    with pytest.raises(ValueError, match="lacks the asset"):
        index.releases[4].bundle_assets()


def test_an_index_of_another_shape_is_refused():
    with pytest.raises(ValueError, match="API rate limit"):
        parse_index({"message": "API rate limit exceeded"})
    with pytest.raises(ValueError, match="not a list of releases"):
        parse_index("<html>")


def test_stable_offers_neither_drafts_nor_prereleases_and_beta_offers_prereleases():
    releases = parse_index(GITHUB_LIKE).releases
    assert newest(releases, "stable").version.text == "0.9.2"
    assert newest(releases, "beta").version.text == "0.10.0rc1"
    only_beta = parse_index([_entry("v0.3.0b1", prerelease=True)]).releases
    assert newest(only_beta, "stable") is None
    assert newest(only_beta, "beta").version.text == "0.3.0b1"


def test_choose_the_newer_release_or_say_why_not():
    releases = parse_index(GITHUB_LIKE).releases
    choice = choose(releases, "stable", V("0.9.1"))
    assert choice.release.version.text == "0.9.2" and "0.9.2 is available" in choice.reason
    choice = choose(releases, "stable", V("0.9.2"))
    assert choice.release is None and choice.reason.startswith("up to date: running 0.9.2")
    assert choose(releases, "stable", V("0.10.0")).release is None
    assert choose(releases, "beta", V("0.9.2")).release.version.text == "0.10.0rc1"
    # an exact version: any channel, also older; never a draft, never the one running
    assert choose(releases, "stable", V("0.9.2"), "0.3.0b1").release.version.text == "0.3.0b1"
    assert choose(releases, "stable", V("0.9.2"), "0.4.0").release is None
    assert "already running" in choose(releases, "stable", V("0.9.2"), "v0.9.2").reason
    assert "not in the index" in choose(releases, "stable", V("0.9.2"), "7.0").reason
    assert choose([], "beta", None).reason == "the beta channel offers no release"
    with pytest.raises(ValueError, match="unknown channel"):
        choose(releases, "nightly", None)


# ---- window -----------------------------------------------------------------------------------

def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_the_window_and_the_day_it_opened():
    assert parse_window("03:00-05:00") == (180, 300)
    assert window_day(_at("2026-05-02T04:59"), (180, 300)) == dt.date(2026, 5, 2)
    assert window_day(_at("2026-05-02T05:00"), (180, 300)) is None
    night = parse_window("23:30-01:00")
    assert window_day(_at("2026-05-02T23:45"), night) == dt.date(2026, 5, 2)
    assert window_day(_at("2026-05-03T00:30"), night) == dt.date(2026, 5, 2)
    assert window_day(_at("2026-05-03T12:00"), night) is None
    assert window_day(_at("2026-05-03T12:00"), parse_window("00:00-00:00")) == dt.date(2026, 5, 3)
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        parse_window("3-5")


def test_an_automatic_update_is_due_once_per_window():
    window = parse_window("23:30-01:00")
    assert auto_update_due(_at("2026-05-02T23:40"), window, None) == "2026-05-02"
    assert auto_update_due(_at("2026-05-03T00:40"), window, "2026-05-02") is None
    assert auto_update_due(_at("2026-05-03T23:31"), window, "2026-05-02") == "2026-05-03"
    assert auto_update_due(_at("2026-05-03T12:00"), window, "2026-05-02") is None


# ---- the health verdict ---------------------------------------------------------------------

NAME = "com.victronenergy.evcharger.phaeton_0"


def test_healthy_means_the_new_version_owns_every_name_and_answers_health():
    ready = WebAnswer(200, "0.2.0")
    assert judge(Observation({NAME: "0.2.0"}, ready), "0.2.0", True).ok
    assert judge(Observation({NAME: "0.2.0"}, None), "0.2.0", True).ok     # web UI off
    verdict = judge(Observation({NAME: None}, ready), "0.2.0", True)
    assert not verdict.ok and verdict.reason == f"{NAME} is not on the D-Bus"
    verdict = judge(Observation({NAME: "0.1.0"}, ready), "0.2.0", True)
    assert "still served by version 0.1.0" in verdict.reason
    verdict = judge(Observation({NAME: "0.2.0", NAME + "x": None}, ready), "0.2.0", True)
    assert not verdict.ok
    verdict = judge(Observation({NAME: "0.2.0"}, WebAnswer(None, None, error="refused")),
                    "0.2.0", True)
    assert "does not answer /health (refused)" in verdict.reason
    not_ready = WebAnswer(503, "0.2.0", ("chargers",))
    assert judge(Observation({NAME: "0.2.0"}, not_ready), "0.2.0", True).reason == \
        "/health is not ready (chargers)"
    # the old version was not ready either: an answer from the new one is enough
    verdict = judge(Observation({NAME: "0.2.0"}, not_ready), "0.2.0", False)
    assert verdict.ok and "as before the update" in verdict.reason
    assert not judge(Observation({NAME: "0.2.0"}, WebAnswer(200, "0.1.0")), "0.2.0", False).ok


def test_healthy_must_last_and_a_version_that_never_gets_there_times_out():
    looks = iter([{NAME: None}, {NAME: "0.2.0"}, {NAME: None}] + [{NAME: "0.2.0"}] * 10)
    verdict = wait_healthy("0.2.0", (NAME,), None, timeout_s=5, require_ready=True,
                           settle_s=0.02, interval_s=0.01,
                           look=lambda: Observation(next(looks), None))
    assert verdict.ok
    verdict = wait_healthy("0.2.0", (NAME,), None, timeout_s=0.05, require_ready=True,
                           settle_s=0.01, interval_s=0.01,
                           look=lambda: Observation({NAME: None}, None))
    assert not verdict.ok and verdict.reason.startswith("not healthy after 0.05 s: ")


# ---- settings, digests ------------------------------------------------------------------------

def test_settings_from_the_config_and_the_key():
    settings = UpdateSettings.from_config({
        "data_dir": "/data/phaeton", "web": {"enabled": True, "host": "0.0.0.0", "port": 8088},
        "update": {"channel": "beta", "public_key": "A" * 43 + "="}})
    assert settings.health_url == "http://127.0.0.1:8088/health"
    assert settings.status_path == "/data/phaeton/update-status.json"
    assert public_key_bytes(settings.public_key) == bytes(32)
    assert UpdateSettings.from_config({"web": {"enabled": False}}).health_url is None
    with pytest.raises(ValueError, match="is 3 bytes"):
        public_key_bytes("AAAA")
    with pytest.raises(ValueError, match="not base64"):
        public_key_bytes("!!")


def test_a_digest_file_is_the_hex_alone_or_sha256sums_line():
    hexdigest = "ab" * 32
    assert parse_digest(hexdigest + "\n") == hexdigest
    assert parse_digest(f"{hexdigest.upper()}  phaeton-0.2.0.tar.gz\n") == hexdigest
    with pytest.raises(VerifyError, match="no SHA-256"):
        parse_digest("<html>not found</html>")


# ---- the pending marker and the links ---------------------------------------------------------

def test_the_pending_marker_round_trips_and_is_stale_when_its_process_is_gone(tmp_path):
    path = tmp_path / "update-pending"
    marker = Pending(to="0.2.0", from_="0.1.0", previous=None, pid=os.getpid(),
                     started=1_000_000.0)
    write_pending(path, marker)
    assert read_pending(path) == marker
    assert "to=0.2.0\nfrom=0.1.0\nprevious=\n" in path.read_text()   # what install.sh reads
    assert not is_stale(marker, now=1_000_010.0)
    assert is_stale(marker, now=1_000_000.0 + 7200)                  # far too old
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    assert is_stale(Pending("0.2.0", "0.1.0", None, int(gone), 1_000_000.0), now=1_000_001.0)
    assert read_pending(tmp_path / "missing") is None


def test_links_switch_atomically_and_prune_keeps_current_and_previous(tmp_path):
    layout = Layout.for_root(str(tmp_path))
    for version in ("0.1.0", "0.2.0", "0.3.0", "0.4.0.partial", ".unpack-0.5.0"):
        (layout.versions / version).mkdir(parents=True)
    assert not layout.installed()
    layout.point(layout.current, "0.3.0")
    layout.point(layout.previous, "0.2.0")
    assert os.readlink(layout.current) == "versions/0.3.0" and layout.installed()
    layout.point(layout.current, "0.2.0")                  # over an existing link
    assert layout.current_version() == "0.2.0" and layout.previous_version() == "0.2.0"
    layout.point(layout.current, "0.3.0")
    assert sorted(layout.prune()) == [".unpack-0.5.0", "0.1.0", "0.4.0.partial"]
    assert layout.versions_present() == ["0.2.0", "0.3.0"]
    assert [p.name for p in layout.dest.iterdir() if p.name.startswith(".")] == []
    layout.point(layout.previous, None)
    assert layout.previous_version() is None


def test_the_install_is_found_from_the_interpreter_of_a_version(tmp_path):
    bin_dir = tmp_path / "data/phaeton/versions/0.2.0/venv/bin"
    bin_dir.mkdir(parents=True)
    os.symlink("versions/0.2.0", tmp_path / "data/phaeton/current")
    layout = Layout.of_running_code(str(tmp_path / "data/phaeton/current/venv/bin/python"))
    assert layout == Layout(tmp_path / "data/phaeton") and layout.root == str(tmp_path)
    assert Layout.of_running_code("/usr/bin/python3") is None
    assert Layout.for_root(None).dest == Path("/data/phaeton") and \
        Layout.for_root(None).root == ""
