"""StateFile: the user's choices survive restarts; bad files are kept aside, never fatal."""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import pytest

from phaeton.store.state_file import StateFile, StateFileError, write_file_atomically

DEFAULTS = {"mode": 0, "start_stop": 1, "set_current_a": 6.0, "auto_start": 1}


def test_missing_file_gives_defaults_and_creates_nothing(tmp_path):
    state = StateFile(tmp_path / "state.json", DEFAULTS)
    assert state.load() == DEFAULTS
    assert os.listdir(tmp_path) == []


def test_saved_state_survives_a_restart_and_new_keys_get_defaults(tmp_path):
    path = tmp_path / "state.json"
    assert StateFile(path, {"mode": 0}).save({"mode": 1, "set_current_a": 10.5}) is True
    restarted = StateFile(path, DEFAULTS)
    assert restarted.load() == {**DEFAULTS, "mode": 1, "set_current_a": 10.5}


def test_unchanged_state_is_not_written_again(tmp_path):
    path = tmp_path / "state.json"
    state = StateFile(path, DEFAULTS)
    assert state.save({"mode": 2}) is True
    before = path.stat().st_mtime_ns, path.stat().st_ino
    assert state.save({"mode": 2}) is False
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    # also after a restart: the file on disk already holds this state
    assert StateFile(path, DEFAULTS).save({"mode": 2}) is False
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    assert state.save({"mode": 3}) is True


@pytest.mark.parametrize("content", [b"{\"mode\": 1", b"", b"[1, 2]", b"\xff\xfe", b"null"])
def test_corrupt_file_is_moved_aside_logged_and_defaults_used(tmp_path, caplog, content):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR):
        assert StateFile(path, DEFAULTS).load() == DEFAULTS
    kept = [name for name in os.listdir(tmp_path) if name.startswith("state.json.corrupt-")]
    assert len(kept) == 1 and not path.exists()
    assert (tmp_path / kept[0]).read_bytes() == content
    assert str(path) in caplog.text and kept[0] in caplog.text


def test_two_corrupt_files_in_a_row_are_both_kept(tmp_path):
    path = tmp_path / "state.json"
    for content in (b"bad one", b"bad two"):
        path.write_bytes(content)
        assert StateFile(path, DEFAULTS).load() == DEFAULTS
    kept = sorted((tmp_path / name).read_bytes() for name in os.listdir(tmp_path))
    assert kept == [b"bad one", b"bad two"]


def test_after_a_corrupt_file_saving_works_again(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b"garbage")
    state = StateFile(path, DEFAULTS)
    state.load()
    assert state.save({**DEFAULTS, "mode": 1}) is True
    assert json.loads(path.read_text())["mode"] == 1


def test_values_json_cannot_store_are_refused_with_the_reason(tmp_path):
    state = StateFile(tmp_path / "state.json")
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        state.save({"when": object()})
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        state.save({"current": float("nan")})
    with pytest.raises(ValueError, match="must be a mapping"):
        state.save([1, 2])  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


@pytest.fixture
def readonly_dir():
    """A directory only root may write to (outside pytest's 0700 tmp dirs)."""
    directory = Path(tempfile.mkdtemp(prefix="phaeton-ro-"))
    yield directory
    directory.chmod(0o755)
    for entry in directory.iterdir():
        entry.chmod(0o644)
        entry.unlink()
    directory.rmdir()


def test_read_only_directory_save_raises_and_keeps_the_old_state(readonly_dir):
    path = readonly_dir / "state.json"
    StateFile(path).save({"mode": 1})
    readonly_dir.chmod(0o555)
    outcome = run_unprivileged(lambda: StateFile(path).save({"mode": 2}))
    assert outcome.startswith("StateFileError: cannot write state file"), outcome
    assert "Permission denied" in outcome
    assert json.loads(path.read_text()) == {"mode": 1}
    assert os.listdir(readonly_dir) == ["state.json"]
    # reading still works in a read-only directory, and unchanged saves need no write
    assert run_unprivileged(lambda: StateFile(path).load()) == "{'mode': 1}"
    assert run_unprivileged(lambda: StateFile(path).save({"mode": 1})) == "False"


def test_unreadable_file_gives_defaults_without_crashing(readonly_dir):
    path = readonly_dir / "state.json"
    path.write_text('{"mode": 1}')
    path.chmod(0o600)  # readable by root only
    readonly_dir.chmod(0o555)  # and it cannot be moved aside either
    outcome = run_unprivileged(lambda: StateFile(path, {"mode": 0}).load())
    assert outcome == "{'mode': 0}"
    assert path.exists()  # never lost


def test_unreadable_file_in_writable_directory_is_moved_aside(readonly_dir):
    path = readonly_dir / "state.json"
    path.write_text('{"mode": 1}')
    path.chmod(0o600)
    readonly_dir.chmod(0o777)
    assert run_unprivileged(lambda: StateFile(path, {"mode": 0}).load()) == "{'mode': 0}"
    kept = [name for name in os.listdir(readonly_dir) if ".corrupt-" in name]
    assert len(kept) == 1
    assert (readonly_dir / kept[0]).read_text() == '{"mode": 1}'


def test_atomic_write_keeps_the_mode_and_leaves_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "secret.json"
    path.write_text("old")
    path.chmod(0o600)
    write_file_atomically(path, b"new")
    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["secret.json"]

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        write_file_atomically(path, b"newer")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["secret.json"]
    with pytest.raises(StateFileError, match="Input/output error"):
        StateFile(path).save({"mode": 9})
    assert path.read_bytes() == b"new"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from unprivileged import run_unprivileged

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10)


@settings(max_examples=60, deadline=None)
@given(state=st.dictionaries(st.text(max_size=8), _json_values, max_size=6))
def test_any_json_state_comes_back_exactly_after_a_restart(tmp_path_factory, state):
    path = tmp_path_factory.mktemp("state") / "state.json"
    StateFile(path).save(state)
    assert StateFile(path).load() == state
