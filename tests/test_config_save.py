"""save_config: validate first, atomic write, backup of the previous file, never a half file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from phaeton.config import (ConfigChanged, ConfigError, config_file_version, load_config,
                            save_config)

from unprivileged import run_unprivileged

HAND_WRITTEN = ("# my wallbox, installed 2024\ncharger:\n  alfen:\n"
                "    host: 192.168.1.50  # garage\n")


def test_save_writes_a_file_that_loads_back_identically(tmp_path):
    path = tmp_path / "config.yaml"
    data = {"charger": {"alfen": {"host": "10.0.0.9"}, "max_current_a": 32},
            "schedule": {"windows": [{"start": "23:00", "end": "05:00", "days": ["mon"]}]}}
    saved = save_config(path, data)
    loaded = load_config(path)
    assert loaded == saved
    assert loaded.charger.max_current_a == 32
    assert loaded.schedule.windows[0].start == "23:00"  # quoted, not read back as 1380
    assert path.read_text(encoding="utf-8") == (
        'charger:\n  alfen:\n    host: 10.0.0.9\n  max_current_a: 32\nschedule:\n  windows:\n'
        '  - start: "23:00"\n    end: "05:00"\n    days: [mon]\n')


def test_save_keeps_the_previous_file_with_its_comments_as_backup(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    config = load_config(path).to_dict()
    config["charger"]["max_current_a"] = 20
    save_config(path, config)
    assert (tmp_path / "config.yaml.bak").read_text(encoding="utf-8") == HAND_WRITTEN
    assert load_config(path).charger.max_current_a == 20
    # a second save backs up the first saved version
    first_saved = path.read_text(encoding="utf-8")
    config["charger"]["max_current_a"] = 24
    save_config(path, config)
    assert (tmp_path / "config.yaml.bak").read_text(encoding="utf-8") == first_saved


def test_invalid_data_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        save_config(path, {"charger": {"alfen": {"host": "h"}, "max_current_a": 200},
                           "web": {"prot": 80}})
    assert [(p.key_path, p.message) for p in caught.value.problems] == [
        ("charger.max_current_a", "must be between 6 and 80 A, got 200"),
        ("web.prot", "unknown key 'prot' (did you mean 'port'?)"),
    ]
    assert path.read_text(encoding="utf-8") == HAND_WRITTEN
    assert sorted(os.listdir(tmp_path)) == ["config.yaml"]


@pytest.fixture
def readonly_dir():
    """A directory nobody but root may write to (created outside pytest's 0700 tmp dirs)."""
    directory = Path(tempfile.mkdtemp(prefix="phaeton-ro-"))
    yield directory
    directory.chmod(0o755)
    for entry in directory.iterdir():
        entry.unlink()
    directory.rmdir()


def test_unwritable_directory_raises_and_leaves_the_old_file(readonly_dir):
    path = readonly_dir / "config.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    readonly_dir.chmod(0o555)
    outcome = run_unprivileged(
        lambda: save_config(path, {"charger": {"alfen": {"host": "h"}}}))
    assert outcome.startswith("PermissionError: [Errno 13] Permission denied"), outcome
    assert path.read_text(encoding="utf-8") == HAND_WRITTEN
    assert sorted(os.listdir(readonly_dir)) == ["config.yaml"]


def test_a_failing_write_leaves_no_half_file(tmp_path, monkeypatch):
    """A crash between writing the temp file and renaming it leaves the old file whole."""
    path = tmp_path / "config.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst) == path:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        save_config(path, {"charger": {"alfen": {"host": "h"}, "max_current_a": 20}})
    assert path.read_text(encoding="utf-8") == HAND_WRITTEN
    assert sorted(os.listdir(tmp_path)) == ["config.yaml", "config.yaml.bak"]


# ---- keeping the file as the user wrote it -------------------------------------------------

COMMENTED = """\
# My GX in the garage. Keep the fuse at 25 until the new meter is in.
site:
  fuse_a: 25          # main fuse (A)
  phases: 3

charger:              # the Alfen by the door
  alfen:
    host: 192.168.1.50  # garage
  max_current_a: 16

# hand-added: cheaper at night
session:
  price_per_kwh: 0.25
  currency: EUR       # until we move
"""


def test_a_save_changes_only_the_changed_value_and_keeps_comments_and_order(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(COMMENTED, encoding="utf-8")
    data = load_config(path).to_dict()  # every key, defaults included, as the web UI sends
    data["site"]["fuse_a"] = 32
    save_config(path, data)
    assert path.read_text(encoding="utf-8") == COMMENTED.replace(
        "  fuse_a: 25          # main fuse (A)", "  fuse_a: 32          # main fuse (A)")
    assert (tmp_path / "config.yaml.bak").read_text(encoding="utf-8") == COMMENTED


def test_new_keys_go_after_their_section_and_removed_list_items_go(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(COMMENTED + "schedule:\n  windows:   # nights\n"
                    "    - start: \"22:00\"   # cheap\n      end: \"06:00\"\n"
                    "    - start: \"12:00\"\n      end: \"13:00\"\n", encoding="utf-8")
    data = load_config(path).to_dict()
    data["charger"]["alfen"]["port"] = 503
    data["control"]["tick_s"] = 3
    data["schedule"]["windows"] = data["schedule"]["windows"][:1]
    data["schedule"]["windows"][0]["end"] = "05:30"
    save_config(path, data)
    text = path.read_text(encoding="utf-8")
    assert text == COMMENTED.replace(
        "    host: 192.168.1.50  # garage\n",
        "    host: 192.168.1.50  # garage\n    port: 503\n") + (
        "schedule:\n  windows:   # nights\n    - start: \"22:00\"   # cheap\n"
        "      end: \"05:30\"\ncontrol:\n  tick_s: 3\n")
    assert load_config(path).control.tick_s == 3


def test_a_section_left_empty_gets_only_the_changed_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("charger:\n  alfen:\n    host: h\nsite:\n  # fuse_a: 25\n"
                    "web:\n  port: 8088\n", encoding="utf-8")
    data = load_config(path).to_dict()
    data["site"]["fuse_a"] = 35
    save_config(path, data)
    assert path.read_text(encoding="utf-8") == (
        "charger:\n  alfen:\n    host: h\nsite:\n  fuse_a: 35\n  # fuse_a: 25\n"
        "web:\n  port: 8088\n")


def test_the_sample_config_survives_a_save_of_every_key(tmp_path):
    """The shipped sample (every key, a comment on each) saved with one change: one line
    differs, and `phaeton check-config` accepts the result."""
    from phaeton.cli import main as phaeton_main

    sample = (Path(__file__).parent.parent / "config.yaml").read_text(encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(sample, encoding="utf-8")
    data = load_config(path).to_dict()
    data["session"]["currency"] = "CHF"
    save_config(path, data)
    changed = [(a, b) for a, b in zip(sample.splitlines(), path.read_text().splitlines())
               if a != b]
    assert len(path.read_text().splitlines()) == len(sample.splitlines())
    assert [(a.split("#")[0].strip(), b.split("#")[0].strip()) for a, b in changed] == [
        ("currency: EUR", "currency: CHF")]
    assert phaeton_main(["check-config", str(path)]) == 0


@pytest.mark.parametrize("original", [
    "site:\n  fuse_a: &f 20\ncharger:\n  alfen: {host: h}\n  max_current_a: *f\n",  # alias
    "site: [not closed\n",  # not YAML (a broken hand edit)
])
def test_a_file_it_cannot_edit_is_written_whole_with_a_note(tmp_path, original):
    path = tmp_path / "config.yaml"
    path.write_text(original, encoding="utf-8")
    data = {"site": {"fuse_a": 30}, "charger": {"alfen": {"host": "h"}, "max_current_a": 20}}
    save_config(path, data)
    assert path.read_text(encoding="utf-8").startswith("# phaeton configuration, written whole")
    assert load_config(path).site.fuse_a == 30
    assert load_config(path).charger.max_current_a == 20
    assert (tmp_path / "config.yaml.bak").read_text(encoding="utf-8") == original


def test_a_save_over_a_changed_file_is_refused_and_writes_nothing(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(COMMENTED, encoding="utf-8")
    version = config_file_version(path)
    data = load_config(path).to_dict()
    data["site"]["fuse_a"] = 32
    edited = COMMENTED.replace("price_per_kwh: 0.25", "price_per_kwh: 0.21")
    path.write_text(edited, encoding="utf-8")  # edited by hand meanwhile
    with pytest.raises(ConfigChanged, match="changed since it was read"):
        save_config(path, data, expected_version=version)
    assert path.read_text(encoding="utf-8") == edited
    assert sorted(os.listdir(tmp_path)) == ["config.yaml"]
    data = load_config(path).to_dict()  # reloaded, as the refusal asks, and changed again
    data["site"]["fuse_a"] = 32
    save_config(path, data, expected_version=config_file_version(path))
    assert load_config(path).session.price_per_kwh == 0.21  # the hand edit stays
    assert load_config(path).site.fuse_a == 32
