"""save_config: validate first, atomic write, backup of the previous file, never a half file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from phaeton.config import ConfigError, load_config, save_config

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
    assert "Comments are not kept" in path.read_text(encoding="utf-8")


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
        ("charger.max_current_a", "must be ≤ 80, got 200"),
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
