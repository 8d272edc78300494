"""The `phaeton` command as a user runs it: `python -m phaeton.cli` / `python -m phaeton`."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from phaeton import __version__, cli

REPO = Path(__file__).resolve().parent.parent


def phaeton(*args: str, module: str = "phaeton.cli") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_version():
    result = phaeton("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"phaeton {__version__}")


def test_valid_config_prints_ok_and_exits_0():
    result = phaeton("check-config", "config.yaml", module="phaeton")
    assert (result.returncode, result.stdout) == (0, "config.yaml: OK\n")


def test_invalid_config_prints_every_problem_with_line_and_exits_1(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent("""\
        site:
          fuse_a: 25
        charger:
          protocol: alfen
          max_curent_a: 16
          min_current_a: 4
        web:
          port: 70000
        """), encoding="utf-8")
    result = phaeton("check-config", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}:3: charger.alfen.host: is required when charger.protocol is 'alfen'",
        f"{path}:5: charger.max_curent_a: unknown key 'max_curent_a' "
        f"(did you mean 'max_current_a'?)",
        f"{path}:6: charger.min_current_a: must be between 6 and 80 A, got 4",
        f"{path}:8: web.port: must be between 1 and 65535, got 70000",
    ]
    assert result.stderr.strip() == f"{path}: 4 problems"


def test_yaml_syntax_error_is_a_problem_with_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("charger:\n  alfen: {host: 10.0.0.1\n", encoding="utf-8")
    result = phaeton("check-config", str(path))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{path}:3: invalid YAML: ")


@pytest.mark.parametrize("make", [
    lambda tmp: tmp / "missing.yaml",
    lambda tmp: tmp,
])
def test_unreadable_file_exits_2_with_the_reason(tmp_path, make):
    target = make(tmp_path)
    result = phaeton("check-config", str(target))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"{target}: cannot read the file: ")


def test_no_subcommand_or_bad_arguments_exit_2_with_usage():
    result = phaeton()
    assert result.returncode == 2 and "check-config" in result.stderr
    result = phaeton("demo", "--speed", "0")
    assert result.returncode == 2
    assert "argument --speed: must be a number > 0, got '0'" in result.stderr
    result = phaeton("demo", "--port", "99999")
    assert result.returncode == 2 and "must be 0..65535" in result.stderr
    result = phaeton("check-config")
    assert result.returncode == 2 and "PATH" in result.stderr


# -- dispatch of run/demo/plan to the modules that implement them --------------------------------

@pytest.fixture
def fake_modules(tmp_path, monkeypatch):
    """Real importable modules in a temp package, put in place of the subcommands' modules."""
    package = tmp_path / "fakephaeton"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "works.py").write_text(textwrap.dedent("""\
        seen = []
        def run_from_cli(args):
            seen.append(args)
            return 3
        """))
    (package / "no_entry.py").write_text("x = 1\n")
    (package / "broken_dependency.py").write_text("import phaeton_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return package


def test_subcommand_arguments_reach_run_from_cli(fake_modules, monkeypatch):
    monkeypatch.setitem(cli.SUBCOMMAND_MODULES, "demo", "fakephaeton.works")
    monkeypatch.setitem(cli.SUBCOMMAND_MODULES, "run", "fakephaeton.works")
    monkeypatch.setitem(cli.SUBCOMMAND_MODULES, "plan", "fakephaeton.works")
    from fakephaeton import works

    assert cli.main(["demo", "--speed", "60", "--ocpp", "--port", "0"]) == 3
    assert cli.main(["demo"]) == 3
    assert cli.main(["run", "--config", "/etc/x.yaml"]) == 3
    assert cli.main(["plan"]) == 3
    demo, plain_demo, run, plan = works.seen
    assert (demo.speed, demo.ocpp, demo.port) == (60.0, True, 0)
    assert (plain_demo.speed, plain_demo.ocpp, plain_demo.port) == (1.0, False, 8088)
    assert run.config == "/etc/x.yaml"
    assert plan.config == cli.DEFAULT_CONFIG_PATH


@pytest.mark.parametrize("module, expected", [
    ("fakephaeton.not_written_yet",
     "phaeton run: not available: module fakephaeton.not_written_yet cannot be imported"),
    ("fakephaeton.no_entry",
     "phaeton run: not available: module fakephaeton.no_entry has no run_from_cli()"),
    ("fakephaeton.broken_dependency",
     "phaeton run: not available: module phaeton_dependency_xyz cannot be imported"),
])
def test_missing_module_is_one_clear_line_and_exit_2(fake_modules, monkeypatch, capsys,
                                                     module, expected):
    monkeypatch.setitem(cli.SUBCOMMAND_MODULES, "run", module)
    assert cli.main(["run", "--config", "config.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected)
    assert len(err.strip().splitlines()) == 1


def test_subcommands_point_at_the_agreed_modules():
    assert cli.SUBCOMMAND_MODULES == {"run": "phaeton.app", "demo": "phaeton.sim.demo",
                                      "plan": "phaeton.planner.cli",
                                      "replay": "phaeton.replay.cli",
                                      "fleet": "phaeton.fleet.operator",
                                      "update": "phaeton.update.cli"}


def _run_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(f"""\
        data_dir: {tmp_path / 'data'}
        charger:
          protocol: alfen
          alfen: {{host: 127.0.0.1}}
        web: {{enabled: false}}
        """))
    return path


def _run_on_bus(tmp_path: Path, address: str) -> subprocess.CompletedProcess:
    """`phaeton run` with DBUS_SYSTEM_BUS_ADDRESS set to `address`."""
    return subprocess.run(
        [sys.executable, "-m", "phaeton", "run", "--config", str(_run_config(tmp_path))],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "DBUS_SYSTEM_BUS_ADDRESS": address})


def test_run_without_a_dbus_names_the_address_and_creates_nothing(tmp_path):
    address = f"unix:path={tmp_path / 'no_bus_socket'}"
    result = _run_on_bus(tmp_path, address)
    assert result.returncode == 1
    assert f"phaeton could not start: no system D-Bus at {address}" in result.stderr
    assert "DBUS_SYSTEM_BUS_ADDRESS" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]   # no data dir


def test_run_with_a_dead_bus_socket_names_the_address(tmp_path):
    import socket
    path = tmp_path / "dead_bus"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))                       # a socket file nobody listens on
    dead.close()
    address = f"unix:path={path}"
    result = _run_on_bus(tmp_path, address)
    assert result.returncode == 1
    assert f"phaeton could not start (system D-Bus at {address}):" in result.stderr


def test_dev_demo_runs_at_60x_unless_given_another_speed():
    """./dev/demo puts --speed 60 before the owner's options; a later --speed wins."""
    line = [l for l in (REPO / "dev/demo").read_text().splitlines() if l.startswith("exec ")]
    assert line == ['exec .venv/bin/phaeton demo --speed 60 "$@"']
    parser = cli.build_parser()
    assert parser.parse_args(["demo", "--speed", "60", "--port", "9000"]).speed == 60.0
    assert parser.parse_args(["demo", "--speed", "60", "--speed", "1"]).speed == 1.0


_AFTER_THE_ENTRY_POINT = textwrap.dedent("""\
    import os, sys
    from phaeton import cli
    cli.main(["check-config", "config.yaml"])
    import numpy   # as the planner does, after the entry point
    print(len(os.listdir("/proc/self/task")), os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
          file=sys.stderr)
    """)


def _without_blas_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in cli.SINGLE_THREADED_BLAS}


def _threads_after_the_entry_point(**env: str) -> tuple[int, str]:
    result = subprocess.run([sys.executable, "-c", _AFTER_THE_ENTRY_POINT], capture_output=True,
                            text=True, timeout=60, cwd=REPO,
                            env={**_without_blas_settings(), "PYTHONPATH": str(REPO), **env})
    assert result.returncode == 0, result.stderr
    threads, setting = result.stderr.split()
    return int(threads), setting


@pytest.mark.skipif((os.cpu_count() or 1) < 2,
                    reason="with one core numpy's BLAS starts no thread of its own anyway")
def test_numpy_gets_no_blas_threads_of_its_own_once_phaeton_has_started():
    """The planner's arrays are small; BLAS threads would only spin and take CPU from the
    GX's own services (numpy imported by a bare interpreter starts one per core)."""
    assert _threads_after_the_entry_point() == (1, "1")
    bare = subprocess.run([sys.executable, "-c", "import os, numpy; "
                           "print(len(os.listdir('/proc/self/task')))"],
                          capture_output=True, text=True, timeout=60,
                          env=_without_blas_settings())
    assert int(bare.stdout) > 1, "this numpy starts no BLAS threads: the check above proves nothing"


def test_an_owners_own_blas_thread_setting_is_kept():
    assert _threads_after_the_entry_point(OPENBLAS_NUM_THREADS="2")[1] == "2"
