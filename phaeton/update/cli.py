"""`phaeton update check | apply [--version V] | rollback | status | recover` (docs/update.md).

The install is found from `--root PREFIX` (PREFIX/data/phaeton, as install.sh's option), else
from where this interpreter's venv lives (<install>/versions/<v>/venv), else /data/phaeton. The
config is `--config PATH`, else <install>/config.yaml. Each step is logged on stderr (the
service's log when the web UI started it); the last line on stdout is the result.
Exit codes: 0 done or nothing to do, 1 failed (the install is as it was), 2 unusable config.
"""
from __future__ import annotations

import json
import logging
import sys
import time

from phaeton.config import ConfigError, load_config
from phaeton.site_layout import charger_entries
from phaeton.update import engine
from phaeton.update.layout import Layout
from phaeton.update.settings import UpdateSettings

SERVICE_PREFIX = "com.victronenergy.evcharger.phaeton_"   # + the charger's id (site_layout.py)


def layout_of(root: str | None) -> Layout:
    if root is not None:
        return Layout.for_root(root)
    return Layout.of_running_code() or Layout.for_root(None)


def context_of(args) -> engine.UpdateContext | int:
    """The update context from the command line, or the exit code of a config error."""
    layout = layout_of(getattr(args, "root", None))
    config_path = getattr(args, "config", None) or str(layout.dest / "config.yaml")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(config_path), file=sys.stderr)
        print(f"phaeton update: cannot use {config_path}", file=sys.stderr)
        return 2
    names = tuple(SERVICE_PREFIX + entry.id for entry in charger_entries(config))
    return engine.UpdateContext(layout, UpdateSettings.from_config(config, names), config_path,
                                trigger=getattr(args, "trigger", None) or "cli")


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s update: %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("phaeton.update")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run_from_cli(args) -> int:
    ctx = context_of(args)
    if isinstance(ctx, int):
        return ctx
    _setup_logging()
    command = args.update_command
    if command == "status":
        return print_status(engine.describe(ctx), as_json=getattr(args, "json", False))
    if command == "check":
        result = engine.check(ctx)
        print(result.message)
        return 0 if result.ok else 1
    if command == "apply":
        outcome = engine.apply(ctx, getattr(args, "target_version", None))
    elif command == "rollback":
        outcome = engine.rollback(ctx)
    else:
        outcome = engine.recover(ctx)
    print(outcome.message)
    return outcome.code


def print_status(state: dict, as_json: bool = False) -> int:
    if as_json:
        print(json.dumps(state, indent=1))
        return 0
    if not state["installed"]:
        print(f"not installed with versions/ and current in {state['install_dir']} "
              f"(run install.sh once)")
    else:
        print(f"current: {state['current']}   previous: {state['previous'] or '-'}   "
              f"in {state['install_dir']}")
    print(f"channel: {state['channel']}   index: {state['url']}")
    print(f"release key: {'configured' if state['key_configured'] else 'NOT configured'}   "
          f"automatic: {'on, ' + state['window'] if state['auto'] else 'off'}")
    check = state.get("last_check")
    if check:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(check.get("time", 0)))
        print(f"last check ({when}): {check.get('message')}")
    progress = state.get("progress") or {}
    if progress.get("state"):
        print(f"last {progress.get('action', 'run')}: {progress['state']}: "
              f"{progress.get('message', '')}")
    pending = state.get("pending")
    if pending:
        what = "was interrupted (run: phaeton update recover)" if pending["interrupted"] \
            else f"is running (pid {pending['pid']})"
        print(f"a switch to {pending['to']} {what}")
    return 0
