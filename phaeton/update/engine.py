"""The updater's steps, in order: check, apply, rollback, recover (docs/update.md).

apply:  check the index -> download into <install>/update-download/ -> size, SHA-256,
        signature -> unpack and build versions/<v> beside the running version -> write the
        pending marker -> previous := current, current := <v> -> svc -t -> health check ->
        healthy: keep it, delete versions older than previous; not healthy: switch back,
        svc -t, delete versions/<v>.
rollback: the same switch to `previous` (current and previous swap), with the health check.
recover:  an apply or rollback that died between switching and its verdict left the pending
        marker; put the links back as it says and restart.

Every refusal before the switch leaves the install exactly as it was (only the status file
and the log tell what happened); every failure after it is rolled back. One apply, rollback or
recover at a time (flock on the versions/ directory).
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from phaeton import __version__
from phaeton.update import fetch, health, stage, supervise
from phaeton.update.layout import Layout
from phaeton.update.pending import (Pending, is_stale, process_alive, read_pending,
                                    remove_pending, write_pending)
from phaeton.update.releases import Choice, Release, choose, parse_index
from phaeton.update.settings import NO_KEY_MESSAGE, UpdateSettings, public_key_bytes
from phaeton.update.status import RUNNING_STATES, Progress, read_status, update_status
from phaeton.update.verify import VerifyError, check_release_file
from phaeton.update.version import Version, parse_version

log = logging.getLogger("phaeton.update")

SMALL_ASSET_BYTES = 4096               # a .sha256 or .sig file
MAX_BUNDLE_BYTES = 512 * 1024 * 1024   # when the index does not say the tarball's size


class UpdateFailed(Exception):
    """A step failed; str() is the one-line reason."""


class Busy(Exception):
    """Another apply, rollback or recover holds the lock."""


@dataclass(frozen=True)
class Outcome:
    code: int                          # the command's exit code: 0 done/nothing to do, 1 failed
    message: str


@dataclass
class UpdateContext:
    """Everything the steps act on. The callables are the edges (replaced in unit tests)."""

    layout: Layout
    settings: UpdateSettings
    config_path: str | None = None
    trigger: str = "cli"
    base_python: str = field(default_factory=lambda: getattr(sys, "_base_executable", None)
                             or sys.executable)
    env: dict[str, str] | None = None
    bus_address: str | None = None
    restart: Callable[[Path], str | None] = supervise.restart
    settle_s: float = 5.0

    @property
    def status_path(self) -> Path:
        return Path(self.settings.status_path)

    def progress(self, action: str) -> Progress:
        return Progress(self.status_path, action, self.trigger, log)


# ---- check ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckResult:
    ok: bool                           # False: the index could not be read
    choice: Choice | None
    message: str

    @property
    def release(self) -> Release | None:
        return self.choice.release if self.choice else None


def running_version(ctx: UpdateContext) -> str | None:
    return ctx.layout.current_version() if ctx.layout.installed() else None


def check(ctx: UpdateContext, wanted: str | None = None) -> CheckResult:
    """Read the index and choose; records the result as `last_check`. Changes nothing else."""
    running_text = running_version(ctx) or __version__
    try:
        running: Version | None = parse_version(running_text)
    except ValueError:
        running = None
    try:
        index = parse_index(fetch.get_json(ctx.settings.url))
        choice = choose(index.releases, ctx.settings.channel, running, wanted)
    except (fetch.FetchError, ValueError) as exc:
        result = CheckResult(False, None, f"cannot check for updates: {exc}")
    else:
        for why in index.skipped:
            log.debug("index: skipped %s", why)
        result = CheckResult(True, choice, choice.reason)
    available = result.release.version.text if result.release else None
    try:
        update_status(ctx.status_path, last_check={
            "time": time.time(), "ok": result.ok, "available": available,
            "channel": ctx.settings.channel, "running": running_text,
            "message": result.message})
    except OSError as exc:
        log.warning("cannot write %s: %s", ctx.status_path, exc)
    return result


# ---- the lock ---------------------------------------------------------------------------------

@contextmanager
def exclusive(layout: Layout):
    """Hold the updater's lock (flock on the versions/ directory itself: no lock file to
    leave behind; nothing to lock where nothing is installed); Busy when another apply,
    rollback or recover holds it."""
    try:
        handle = os.open(layout.versions, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy("another update, rollback or recover is running") from None
        yield
    finally:
        os.close(handle)                   # closing releases the lock


def _exclusively(ctx: UpdateContext, action: str, body: Callable[[Progress], Outcome]
                 ) -> Outcome:
    """Run one action holding the lock; the status file is written only once it is held (a
    second apply must not overwrite the progress of the first)."""
    try:
        with exclusive(ctx.layout):
            return body(ctx.progress(action))
    except Busy as exc:
        message = f"{action} not started: {exc}"
        log.error("%s", message)
        return Outcome(1, message)


def lock_is_held(layout: Layout) -> bool:
    try:
        handle = os.open(layout.versions, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)
    return False


# ---- apply ------------------------------------------------------------------------------------

def apply(ctx: UpdateContext, wanted: str | None = None) -> Outcome:
    return _exclusively(ctx, "apply", lambda progress: _apply(ctx, progress, wanted))


def _apply(ctx: UpdateContext, progress: Progress, wanted: str | None) -> Outcome:
    running = running_version(ctx)
    try:
        _require_installed(ctx)
        _recover_if_interrupted(ctx, progress)
        running = running_version(ctx)
        key = _require_key(ctx)
        progress.step("checking", f"checking {ctx.settings.url} "
                                  f"({ctx.settings.channel} channel)", **{"from": running})
        result = check(ctx, wanted)
        if not result.ok:
            raise UpdateFailed(result.message.removeprefix("cannot check for updates: "))
        if result.release is None:
            progress.step("up_to_date", result.message)
            return Outcome(0, result.message)
        release = result.release
        new = release.version.text
        progress.step("downloading", result.message, to=new)
        try:
            _download_verify_stage(ctx, progress, release, key)
        finally:
            shutil.rmtree(ctx.layout.downloads, ignore_errors=True)
        return _switch(ctx, progress, new, running, action="apply")
    except UpdateFailed as exc:
        message = f"update not installed: {exc}; phaeton {running} keeps running" \
            if running else f"update not installed: {exc}"
        progress.failed("failed", message)
        return Outcome(1, message)


def _require_installed(ctx: UpdateContext) -> None:
    if not ctx.layout.installed():
        raise UpdateFailed(f"{ctx.layout.dest} has no 'current' link: self-update needs the "
                           f"layout with versions/ (run the install.sh of a release that "
                           f"has it once; docs/update.md)")


def _require_key(ctx: UpdateContext) -> bytes:
    if not ctx.settings.public_key:
        raise UpdateFailed(NO_KEY_MESSAGE)
    try:
        return public_key_bytes(ctx.settings.public_key)
    except ValueError as exc:
        raise UpdateFailed(str(exc)) from None


def _download_verify_stage(ctx: UpdateContext, progress: Progress, release: Release,
                           key: bytes) -> None:
    new = release.version.text
    try:
        tarball, digest, signature = release.bundle_assets()
    except ValueError as exc:
        raise UpdateFailed(str(exc)) from None
    downloads = ctx.layout.downloads
    shutil.rmtree(downloads, ignore_errors=True)
    downloads.mkdir(parents=True)
    target = downloads / (tarball.name + ".part")
    size_text = f" ({tarball.size / 1e6:.1f} MB)" if tarball.size is not None else ""
    progress.step("downloading", f"downloading {tarball.name}{size_text}")
    try:
        fetch.download(digest.url, downloads / digest.name, max_bytes=SMALL_ASSET_BYTES)
        fetch.download(signature.url, downloads / signature.name, max_bytes=SMALL_ASSET_BYTES)
        limit = tarball.size if tarball.size is not None else MAX_BUNDLE_BYTES
        fetch.download(tarball.url, target, max_bytes=limit)
    except fetch.FetchError as exc:
        raise UpdateFailed(f"download failed: {exc}") from None
    progress.step("verifying", "checking the size, the SHA-256 and the signature")
    try:
        check_release_file(target, expected_size=tarball.size,
                           digest_text=(downloads / digest.name).read_text(errors="replace"),
                           signature=(downloads / signature.name).read_bytes(),
                           public_key=key)
    except VerifyError as exc:
        raise UpdateFailed(str(exc)) from None
    progress.step("installing", f"signature good; installing phaeton {new} in "
                                f"{ctx.layout.version_dir(new)} (beside the running version)")
    if new == ctx.layout.current_version():
        raise UpdateFailed(f"phaeton {new} is the current version")
    partial = None
    try:
        partial = stage.unpack(target, ctx.layout.versions, new)
        stage.build_venv(partial, ctx.base_python, ctx.env)
        stage.check_version_dir(partial, new, ctx.config_path)
        stage.finish(partial, ctx.layout.version_dir(new))
    except (stage.StageError, OSError) as exc:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        raise UpdateFailed(str(exc)) from None


# ---- the switch, shared by apply, rollback and recover -------------------------------------

@dataclass(frozen=True)
class Baseline:
    """How the running version answered /health before the switch: the new one must do as
    well (answer when the old one answered, be ready when the old one was)."""

    health_url: str | None             # None: do not ask the web UI (off, or it did not answer)
    require_ready: bool


def _baseline(ctx: UpdateContext) -> Baseline:
    url = ctx.settings.health_url
    if url is None:
        return Baseline(None, False)
    answer = health.web_health(url)
    if answer.status is None:
        log.info("the web UI of the running version does not answer /health (%s): the new "
                 "version is checked on the D-Bus only", answer.error)
        return Baseline(None, False)
    return Baseline(url, answer.ready)


def _wait(ctx: UpdateContext, version: str, baseline: Baseline) -> health.Verdict:
    return health.wait_healthy(version, ctx.settings.dbus_names, baseline.health_url,
                               timeout_s=ctx.settings.health_timeout_s,
                               require_ready=baseline.require_ready, settle_s=ctx.settle_s,
                               bus_address=ctx.bus_address)


def _switch(ctx: UpdateContext, progress: Progress, new: str, old: str | None,
            action: str) -> Outcome:
    layout = ctx.layout
    previous_before = layout.previous_version()
    baseline = _baseline(ctx)
    marker = Pending(to=new, from_=old or "", previous=previous_before, pid=os.getpid(),
                     started=time.time())
    write_pending(layout.pending, marker)
    layout.point(layout.previous, old)
    layout.point(layout.current, new)
    progress.step("switching", f"current -> versions/{new}, previous -> versions/{old}; "
                               f"restarting the service")
    problem = ctx.restart(layout.service_dir)
    if problem is None:
        waited = ("its D-Bus name" if baseline.health_url is None
                  else "its D-Bus name and /health")
        progress.step("health_check", f"waiting up to {ctx.settings.health_timeout_s:g} s for "
                                      f"phaeton {new}: {waited}")
        verdict = _wait(ctx, new, baseline)
        if verdict.ok:
            _keep(ctx, new)
            message = (f"phaeton {new} is running (was {old}); {verdict.reason}" if action ==
                       "apply" else f"rolled back to phaeton {new} (was {old}); {verdict.reason}")
            progress.step("done", message, to=new, **{"from": old})
            return Outcome(0, message)
        reason = verdict.reason
    else:
        reason = problem
    return _switch_back(ctx, progress, marker, reason, action, baseline)


def _keep(ctx: UpdateContext, new: str) -> None:
    layout = ctx.layout
    installer = layout.version_dir(new) / "install.sh"
    if installer.is_file():
        temporary = layout.installer.with_name(".install.sh.tmp")
        shutil.copy2(installer, temporary)
        os.replace(temporary, layout.installer)
    removed = layout.prune()
    if removed:
        log.info("deleted older versions: %s", ", ".join(removed))
    remove_pending(layout.pending)


def _switch_back(ctx: UpdateContext, progress: Progress, marker: Pending, reason: str,
                 action: str, baseline: Baseline) -> Outcome:
    layout, new, old = ctx.layout, marker.to, marker.from_
    progress.step("rolling_back", f"phaeton {new} failed: {reason}; switching back to {old}")
    _restore_links(layout, marker)
    problem = ctx.restart(layout.service_dir)
    back = (health.Verdict(False, problem) if problem
            else _wait(ctx, old, Baseline(baseline.health_url, False)))
    remove_pending(layout.pending)
    verb = "update to" if action == "apply" else "rollback to"
    message = f"{verb} {new} failed: {reason}; back to phaeton {old}"
    if not back.ok:
        message += f" (which is not healthy either: {back.reason})"
    progress.failed("rolled_back", message)
    return Outcome(1, message)


def _restore_links(layout: Layout, marker: Pending) -> None:
    """current, previous and versions/ as they were before the switch the marker describes."""
    if marker.from_ and layout.version_dir(marker.from_).is_dir():
        layout.point(layout.current, marker.from_)
    previous = marker.previous
    layout.point(layout.previous, previous if previous and
                 layout.version_dir(previous).is_dir() else None)
    if marker.to and marker.to not in (marker.from_, marker.previous):
        shutil.rmtree(layout.version_dir(marker.to), ignore_errors=True)


# ---- rollback and recover ---------------------------------------------------------------------

def rollback(ctx: UpdateContext) -> Outcome:
    return _exclusively(ctx, "rollback", lambda progress: _rollback(ctx, progress))


def _rollback(ctx: UpdateContext, progress: Progress) -> Outcome:
    try:
        _require_installed(ctx)
        if _recover_if_interrupted(ctx, progress):
            message = "an interrupted update was undone; that was the rollback"
            progress.step("done", message)
            return Outcome(0, message)
        current = ctx.layout.current_version()
        target = ctx.layout.previous_version()
        if target is None:
            raise UpdateFailed("there is no previous version to roll back to")
        if stage.venv_problem(ctx.layout.python_of(target)) is not None:
            raise UpdateFailed(f"the previous version {target} does not import in its venv "
                               f"(a firmware update?); re-install it with its install.sh")
        progress.step("switching", f"rolling back from {current} to {target}",
                      to=target, **{"from": current})
        return _switch(ctx, progress, target, current, action="rollback")
    except UpdateFailed as exc:
        message = f"rollback not done: {exc}"
        progress.failed("failed", message)
        return Outcome(1, message)


def _recover_if_interrupted(ctx: UpdateContext, progress: Progress) -> bool:
    """Undo a switch whose process died (the pending marker is stale); True when one was."""
    marker = read_pending(ctx.layout.pending)
    if marker is None:
        return False
    if not is_stale(marker):
        raise UpdateFailed(f"an update to {marker.to} is running (pid {marker.pid})")
    was = ctx.layout.current_version()
    progress.step("rolling_back", f"an update to {marker.to} was interrupted (its process "
                                  f"{marker.pid} is gone); back to {marker.from_}")
    _restore_links(ctx.layout, marker)
    if ctx.layout.current_version() != was:
        problem = ctx.restart(ctx.layout.service_dir)
        if problem:
            log.warning("restarting the service: %s", problem)
    remove_pending(ctx.layout.pending)
    return True


def recover(ctx: UpdateContext) -> Outcome:
    return _exclusively(ctx, "recover", lambda progress: _recover(ctx, progress))


def _recover(ctx: UpdateContext, progress: Progress) -> Outcome:
    try:
        if not _recover_if_interrupted(ctx, progress):
            message = "no interrupted update to recover"
            progress.step("idle", message)
            return Outcome(0, message)
        current = ctx.layout.current_version()
        verdict = (_wait(ctx, current, Baseline(ctx.settings.health_url, False))
                   if current else None)
        message = f"the interrupted update was undone: phaeton {current} runs again"
        if verdict is not None and not verdict.ok:
            message += f" (but it is not healthy: {verdict.reason})"
        progress.step("rolled_back", message)
        return Outcome(0 if verdict is None or verdict.ok else 1, message)
    except UpdateFailed as exc:
        message = f"recover not done: {exc}"
        progress.failed("failed", message)
        return Outcome(1, message)


# ---- what is installed ------------------------------------------------------------------------

def describe(ctx: UpdateContext) -> dict[str, Any]:
    """The install and the updater's state, for `phaeton update status` and GET /api/update."""
    layout = ctx.layout
    marker = read_pending(layout.pending)
    status = read_status(ctx.status_path)
    busy = status.get("state") in RUNNING_STATES
    if busy and status.get("pid") and not process_alive(int(status["pid"])):
        status = {**status, "state": "failed",
                  "message": f"the {status.get('action', 'update')} process ended without a "
                             f"result (see the log)"}
    return {
        "installed": layout.installed(),
        "install_dir": str(layout.dest),
        "current": layout.current_version(),
        "previous": layout.previous_version(),
        "versions": layout.versions_present(),
        "pending": None if marker is None else {
            "to": marker.to, "from": marker.from_, "pid": marker.pid,
            "interrupted": is_stale(marker)},
        "channel": ctx.settings.channel,
        "url": ctx.settings.url,
        "key_configured": bool(ctx.settings.public_key),
        "auto": ctx.settings.auto,
        "window": ctx.settings.window,
        "last_check": status.get("last_check"),
        "progress": {k: status.get(k) for k in ("state", "action", "trigger", "from", "to",
                                               "message", "started", "updated", "log")
                     if k in status},
    }

