#!/bin/sh
# phaeton installer for Victron Venus OS (Cerbo GX, Ekrano GX and other GX devices).
#
#   ./install.sh                      install, or upgrade in place (config and data are kept)
#   ./install.sh --password-generate  same, generating the web UI password (printed once)
#   ./install.sh --status             what is installed and whether it runs
#   ./install.sh --uninstall              remove everything and leave the GX as it was
#   ./install.sh --uninstall --keep-data  the same, but keep config.yaml and the charging data
#
# Layout (docs/install.md, docs/update.md): each version in /data/phaeton/versions/<version>/
# (the unpacked release and its own venv/); /data/phaeton/current -> versions/<version> (the
# one the service runs, switched atomically), /data/phaeton/previous -> the one before;
# /data/phaeton/{install.sh,service,config.yaml,config.yaml.sample} and the data phaeton writes
# (state.json, sessions.sqlite, ...); /service/phaeton -> /data/phaeton/service; one line in
# /data/rc.local; logs in /var/log/phaeton. An install of the older layout (/data/phaeton/venv)
# is moved to this one, config and data kept. POSIX sh: busybox/bash on the GX, dash elsewhere.
set -u

NAME=phaeton
RC_MARKER="# phaeton-install: restores /service/phaeton at boot"

say() { printf '%s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() {
    [ -n "${CLEANUP:-}" ] && rm -rf "$CLEANUP"
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<'EOF'
Usage: install.sh [--password-generate] [--python PATH] [--root PREFIX]
       install.sh --status [--root PREFIX]
       install.sh --uninstall [--keep-data] [--root PREFIX]

Installs or upgrades phaeton in /data/phaeton on a Venus OS GX device.
  --password-generate  generate the web UI password and print it (default when not interactive)
  --python PATH        Python 3 to build the venv from (default: /usr/bin/python3)
  --status             show what is installed, the version running and whether the
                       service is up
  --uninstall          stop and remove phaeton: /data/phaeton, its /service link, its logs
                       and its rc.local line (rc.local goes back to how it was)
  --keep-data          with --uninstall: keep config.yaml and the charging data in
                       /data/phaeton, for a later install
  --root PREFIX        act on PREFIX/data, PREFIX/service, PREFIX/opt/victronenergy
                       (for tests on a machine that is not a GX)
EOF
}

# ---- arguments --------------------------------------------------------------------------------
ACTION=install
ROOT=""
KEEP_DATA=0
PASSWORD_MODE=auto
PYTHON="${PHAETON_PYTHON:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift ;;
        --root=*) ROOT=${1#--root=} ;;
        --python) [ $# -ge 2 ] || die "--python needs a path"; PYTHON=$2; shift ;;
        --python=*) PYTHON=${1#--python=} ;;
        --uninstall) ACTION=uninstall ;;
        --keep-data) KEEP_DATA=1 ;;
        --status) ACTION=status ;;
        --boot) ACTION=boot ;;
        --password-generate) PASSWORD_MODE=generate ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done
[ "$KEEP_DATA" = 1 ] && [ "$ACTION" != uninstall ] && die "--keep-data only goes with --uninstall"

if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT: no such directory"
    ROOT=$(cd "$ROOT" && pwd) || die "--root $ROOT: not accessible"
    [ "$ROOT" = / ] && ROOT=""
fi

DATA="$ROOT/data"
DEST="$DATA/$NAME"
VERSIONS="$DEST/versions"
CURRENT="$DEST/current"
PREVIOUS="$DEST/previous"
PENDING="$DEST/update-pending"       # a self-update switching versions (phaeton/update/pending.py)
LEGACY_VENV="$DEST/venv"             # before versions/: the venv; now a link to current/venv
VENV=""                              # the venv being built or used (set per action)
WHEELS=""                            # the wheels it is built from
CLEANUP=""                           # a half-built version directory that die removes
SERVICE_DIR="$ROOT/service"
SERVICE_LINK="$SERVICE_DIR/$NAME"
RC_LOCAL="$DATA/rc.local"
RC_WAS="$DEST/.rc_local_was"
LOG_DIR="$ROOT/var/log/$NAME"
# phaeton's page on the GX screen (gui-v2 v1.2.14 or later reads /data/apps/enabled/*/gui-v2/)
APPS="$DATA/apps"
GUI_APP="$APPS/available/$NAME"
APPS_MADE="$DEST/.apps_made"
ROOT_ARG=""
[ -n "$ROOT" ] && ROOT_ARG=" --root $ROOT"

if [ ! -d "$ROOT/opt/victronenergy" ]; then
    if [ -n "$ROOT" ]; then
        die "$ROOT does not look like a GX: $ROOT/opt/victronenergy is missing"
    fi
    die "this is not a Venus OS GX device (/opt/victronenergy is missing); nothing was changed.
  To try phaeton on a PC run 'phaeton demo'; to test the installer use --root PREFIX."
fi
[ -d "$DATA" ] || die "$DATA is missing: is this really a GX?"

if [ -z "$PYTHON" ]; then
    if [ -x /usr/bin/python3 ] && [ -z "$ROOT" ]; then PYTHON=/usr/bin/python3
    else PYTHON=$(command -v python3 || true); fi
fi

# ---- helpers ------------------------------------------------------------------------------------

supervised() { svok "$1" >/dev/null 2>&1; }

# Wait until supervise of $1 is gone (after svc -dx), at most 15 s.
wait_unsupervised() {
    n=0
    while supervised "$1" && [ $n -lt 75 ]; do
        sleep 0.2 2>/dev/null || { sleep 1; n=$((n + 4)); }   # busybox may lack fractions
        n=$((n + 1))
    done
}

stop_service() {
    [ -L "$SERVICE_LINK" ] && rm -f "$SERVICE_LINK"
    if [ -d "$DEST/service" ]; then
        svc -dx "$DEST/service" >/dev/null 2>&1 || true
        svc -dx "$DEST/service/log" >/dev/null 2>&1 || true
        wait_unsupervised "$DEST/service"
        wait_unsupervised "$DEST/service/log"
    fi
}

link_service() {
    mkdir -p "$SERVICE_DIR"
    ln -sfn "$DEST/service" "$SERVICE_LINK" || die "cannot link $SERVICE_LINK"
    if [ -z "$ROOT" ] && command -v svrescan >/dev/null 2>&1; then
        svrescan >/dev/null 2>&1 || true
    fi
}

# The rc.local line: re-links the service at boot (and repairs a venv broken by a firmware
# update). Exactly one such line; every other line of the file is kept in order.
rc_line() {
    printf '[ -x %s/install.sh ] && %s/install.sh%s --boot  %s\n' \
        "$DEST" "$DEST" "$ROOT_ARG" "$RC_MARKER"
}

rc_remove_line() {
    [ -f "$RC_LOCAL" ] || return 0
    grep -q -F "$RC_MARKER" "$RC_LOCAL" || return 0
    tmp="$RC_LOCAL.phaeton.tmp"
    grep -v -F "$RC_MARKER" "$RC_LOCAL" > "$tmp" || true
    cat "$tmp" > "$RC_LOCAL" && rm -f "$tmp"   # keeps the file's owner and mode
}

# How rc.local was before the first install ("absent", or its mode such as 755), so that
# uninstalling can put it back exactly: delete a file the installer created, restore a mode
# the installer changed.
rc_remember() {
    [ -f "$RC_WAS" ] && return 0
    if [ -f "$RC_LOCAL" ]; then
        stat -c %a "$RC_LOCAL" > "$RC_WAS" 2>/dev/null || echo unknown > "$RC_WAS"
    else
        echo absent > "$RC_WAS"
    fi
}

rc_restore() {
    was=$(cat "$RC_WAS" 2>/dev/null || echo unknown)
    [ -f "$RC_LOCAL" ] || return 0
    case "$was" in
        absent)
            if [ -z "$(grep -v -e '^#!/bin/bash$' -e '^[[:space:]]*$' "$RC_LOCAL")" ]; then
                rm -f "$RC_LOCAL"   # the installer made it, and nobody added a line since
            fi ;;
        [0-7][0-7][0-7]|[0-7][0-7][0-7][0-7]) chmod "$was" "$RC_LOCAL" ;;
    esac
}

rc_add_line() {
    rc_remember
    if [ ! -f "$RC_LOCAL" ]; then
        printf '#!/bin/bash\n' > "$RC_LOCAL" || die "cannot create $RC_LOCAL"
        chmod 755 "$RC_LOCAL"
    fi
    rc_remove_line
    # a last line without a newline would be glued to ours
    if [ -s "$RC_LOCAL" ] && [ "$(tail -c 1 "$RC_LOCAL" | od -An -c | tr -d ' ')" != '\n' ]; then
        printf '\n' >> "$RC_LOCAL"
    fi
    rc_line >> "$RC_LOCAL"
    [ -x "$RC_LOCAL" ] || { chmod 755 "$RC_LOCAL"; warn "$RC_LOCAL was not executable; made it so"; }
}

venv_works() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -I -c 'import phaeton.app' >/dev/null 2>&1
}

# ---- versions/, current, previous (docs/update.md) ----------------------------------------------

# The version a link (current, previous) names: the last part of its target; empty if none.
linked_version() {
    target=$(readlink "$1" 2>/dev/null) || return 0
    printf '%s\n' "${target##*/}"
}

# The installed version: what current names, or the VERSION file of the older layout.
installed_version() {
    v=$(linked_version "$CURRENT")
    if [ -z "$v" ] && [ -f "$DEST/VERSION" ]; then v=$(cat "$DEST/VERSION"); fi
    printf '%s\n' "$v"
}

# Points link $2 at versions/$1 atomically: a new link is renamed over the old one (rename(2)
# replaces it in one step; mv would move it into the directory the old link names).
switch_link() {
    tmp="$(dirname "$2")/.$(basename "$2").$$.tmp"
    rm -f "$tmp"
    ln -s "versions/$1" "$tmp" \
        && "$PYTHON" -c 'import os, sys; os.replace(sys.argv[1], sys.argv[2])' "$tmp" "$2" \
        || { rm -f "$tmp"; return 1; }
}

# A self-update whose process died between switching current and its health check leaves the
# pending marker: put current and previous back as it says (at boot no such process can still
# be running; otherwise refuse while it is).
finish_interrupted_update() {
    [ -f "$PENDING" ] || return 0
    pid=$(sed -n 's/^pid=//p' "$PENDING")
    if [ "$ACTION" != boot ] && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        die "a self-update is switching versions (pid $pid); wait for it: phaeton update status"
    fi
    to=$(sed -n 's/^to=//p' "$PENDING")
    from=$(sed -n 's/^from=//p' "$PENDING")
    prev=$(sed -n 's/^previous=//p' "$PENDING")
    if [ -n "$from" ] && [ -d "$VERSIONS/$from" ]; then
        switch_link "$from" "$CURRENT" || die "cannot switch $CURRENT back to $from"
        if [ -n "$prev" ] && [ -d "$VERSIONS/$prev" ]; then switch_link "$prev" "$PREVIOUS"
        else rm -f "$PREVIOUS"; fi
        if [ -n "$to" ] && [ "$to" != "$from" ] && [ "$to" != "$prev" ]; then
            rm -rf "${VERSIONS:?}/$to"
        fi
        say "an update to $to was interrupted: back to phaeton $from"
    fi
    rm -f "$PENDING"
}

# Keeps the versions current and previous name; deletes the others and leftovers.
prune_versions() {
    keep_current=$(linked_version "$CURRENT")
    keep_previous=$(linked_version "$PREVIOUS")
    for d in "$VERSIONS"/* "$VERSIONS"/.unpack-*; do
        [ -e "$d" ] || continue
        case "${d##*/}" in
            "$keep_current"|"$keep_previous") ;;
            *) rm -rf "$d" ;;
        esac
    done
}

# Copies the release in $SRC to $VDIR.partial, builds its venv there and renames it to $VDIR
# (a directory called versions/<version> is always complete; the running version is untouched).
stage_version() {
    stage="$VDIR.partial"
    rm -rf "$stage"
    mkdir -p "$stage/wheels" || die "cannot create $stage"
    CLEANUP=$stage
    for f in install.sh VERSION config.yaml service docs README.md setup.py phaeton velib; do
        [ -e "$SRC/$f" ] || continue
        cp -R "$SRC/$f" "$stage/" || die "cannot copy $SRC/$f to $stage"
    done
    printf '%s\n' "$VERSION" > "$stage/VERSION"
    # wheels: the release's, or phaeton's own built from a source checkout
    if ls "$SRC"/wheels/*.whl >/dev/null 2>&1; then
        cp "$SRC"/wheels/*.whl "$stage/wheels/" || die "cannot copy the wheels"
        [ -f "$SRC/wheels/README.txt" ] && cp "$SRC/wheels/README.txt" "$stage/wheels/"
    else
        say "no bundled wheels: building phaeton's wheel from $SRC"
        "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$stage/wheels" "$SRC" \
            || "$PYTHON" -m pip wheel -q --no-deps -w "$stage/wheels" "$SRC" \
            || die "cannot build phaeton's wheel from $SRC"
    fi
    VENV="$stage/venv"
    WHEELS="$stage/wheels"
    system_packages
    install_venv
    if [ -e "$VDIR" ]; then   # the same version again: the new copy replaces it
        rm -rf "$VDIR.old"
        mv "$VDIR" "$VDIR.old" || die "cannot move $VDIR aside"
    fi
    mv "$stage" "$VDIR" || die "cannot rename $stage to $VDIR"
    CLEANUP=""
    # the venv's scripts name their interpreter by path: from .partial to the final place
    "$VDIR/venv/bin/python" -I -c 'import sys; from pathlib import Path
from phaeton.update.stage import relocate
relocate(Path(sys.argv[1]), sys.argv[2], sys.argv[1])' "$VDIR/venv" "$stage/venv" \
        || warn "could not rewrite the venv's paths in $VDIR/venv/bin"
    VENV="$VDIR/venv"
    WHEELS="$VDIR/wheels"
}

# numpy and PyYAML are not pure Python: take them from Venus' package feed when missing.
system_packages() {
    missing=""
    "$PYTHON" -c 'import numpy' >/dev/null 2>&1 || missing="$missing python3-numpy"
    "$PYTHON" -c 'import yaml' >/dev/null 2>&1 || missing="$missing python3-pyyaml"
    [ -n "$missing" ] || return 0
    if command -v opkg >/dev/null 2>&1; then
        say "installing from the Venus package feed:$missing"
        # shellcheck disable=SC2086
        { opkg update && opkg install $missing; } || warn "opkg could not install$missing (offline?); trying wheels"
    else
        warn "no opkg: $missing must come from wheels"
    fi
}

pip_install() {
    # $1 = wheels dir; rest = requirements. Offline first, then PyPI; never build from source.
    wheels=$1; shift
    if "$VENV/bin/python" -I -m pip install -q --disable-pip-version-check --only-binary=:all: \
            --no-index --find-links "$wheels" "$@" 2>/dev/null; then
        return 0
    fi
    say "the bundled wheels are not enough; trying PyPI"
    "$VENV/bin/python" -I -m pip install -q --disable-pip-version-check --only-binary=:all: \
        --find-links "$wheels" "$@"
}

# Builds (or repairs) the venv $VENV and installs phaeton's wheel from $WHEELS.
install_venv() {
    wheel=$(ls "$WHEELS"/phaeton-*.whl 2>/dev/null | head -n 1)
    [ -n "$wheel" ] || die "no phaeton wheel in $WHEELS"
    pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ -d "$VENV" ] && { ! "$VENV/bin/python" -I -c 'import sys' >/dev/null 2>&1 \
            || [ ! -d "$VENV/lib/python$pyver/site-packages" ]; }; then
        say "the venv was made for another Python (firmware update?); rebuilding it"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv --system-site-packages "$VENV" || {
            rm -rf "$VENV"
            die "'$PYTHON -m venv' failed; on Venus run: opkg update && opkg install python3-venv python3-pip"
        }
    fi
    pip_install "$WHEELS" "$wheel" || die "installing phaeton's Python dependencies failed (see above)"
    # the exact code of this release, even when the version number did not change
    "$VENV/bin/python" -I -m pip install -q --disable-pip-version-check --no-index --no-deps \
        --force-reinstall "$wheel" || die "installing $wheel failed"
    venv_works || die "phaeton does not import in $VENV (see: $VENV/bin/python -c 'import phaeton.app')"
}

# Prints the hash of password $1 in the web UI's format (phaeton.web.passwords).
hash_password() {
    PHAETON_NEW_PASSWORD=$1 "$VENV/bin/python" -I -c \
        'import os; from phaeton.web.passwords import hash_password as h; print(h(os.environ["PHAETON_NEW_PASSWORD"]))'
}

# Sets web.password_hash in config.yaml, editing only that line (comments are kept).
set_password_hash() {
    PHAETON_HASH=$1 "$VENV/bin/python" -I - "$DEST/config.yaml" <<'EOF'
import os, re, sys
path, value = sys.argv[1], os.environ["PHAETON_HASH"]
lines = open(path, encoding="utf-8").read().splitlines(keepends=True)
start = next((i for i, l in enumerate(lines) if re.match(r"web:\s*(#.*)?$", l)), None)
new = f'  password_hash: "{value}"\n'
if start is None:
    lines += ["\n" if lines and not lines[-1].endswith("\n") else "", "web:\n", new]
else:
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].strip() and not lines[i].startswith((" ", "#"))), len(lines))
    hit = next((i for i in range(start + 1, end)
                if re.match(r"\s+password_hash:", lines[i])), None)
    if hit is None:
        lines.insert(start + 1, new)
    else:
        m = re.match(r"(\s+password_hash:)\s*(?:null|~|\"[^\"]*\"|'[^']*'|[^#\s]*)(\s*#.*)?$",
                     lines[hit].rstrip("\n"))
        lines[hit] = f'{m.group(1)} "{value}"{m.group(2) or ""}\n' if m else new
tmp = path + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.writelines(lines)
os.replace(tmp, path)
EOF
}

password_is_set() {
    "$VENV/bin/python" -I - "$DEST/config.yaml" <<'EOF'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1], encoding="utf-8")) or {}
sys.exit(0 if (cfg.get("web") or {}).get("password_hash") else 1)
EOF
}

choose_password() {
    if password_is_set; then
        say "web UI password: kept (change it in the web UI)"
        return 0
    fi
    if [ "$PASSWORD_MODE" = auto ] && [ -t 0 ] && [ -t 1 ]; then
        # echo off before the prompt appears, so nothing typed early is shown
        stty -echo 2>/dev/null
        trap 'stty echo 2>/dev/null' EXIT
        trap 'stty echo 2>/dev/null; exit 130' INT TERM
        while :; do
            printf 'Web UI password (at least 8 characters, empty = generate one): '
            read -r pw1 || pw1=""; printf '\n'
            [ -z "$pw1" ] && break
            if [ ${#pw1} -lt 8 ]; then say "too short"; continue; fi
            printf 'Again: '
            read -r pw2 || pw2=""; printf '\n'
            [ "$pw1" = "$pw2" ] && break
            say "the two did not match"
        done
        stty echo 2>/dev/null
        trap - EXIT INT TERM
        if [ -n "$pw1" ]; then
            set_password_hash "$(hash_password "$pw1")" || die "could not store the password hash"
            say "web UI password: set"
            return 0
        fi
    fi
    pw=$("$VENV/bin/python" -I -c 'import secrets; print(secrets.token_urlsafe(12))')
    set_password_hash "$(hash_password "$pw")" || die "could not store the password hash"
    say "web UI password (shown only now, write it down): $pw"
}

# The GX screen's page: phaeton/gui_v2/phaeton.json from the installed package, linked as an
# enabled app. /data/apps is made if missing (and noted, so that uninstalling removes it again).
install_gui_page() {
    page=$("$VENV/bin/python" -I -c 'import os, phaeton.gui_v2 as g
print(os.path.join(os.path.dirname(g.__file__), "phaeton.json"))' 2>/dev/null)
    if [ -z "$page" ] || [ ! -f "$page" ]; then
        warn "this release has no page for the GX screen (phaeton/gui_v2/phaeton.json)"
        return 0
    fi
    [ -d "$APPS" ] || { mkdir -p "$APPS" && : > "$APPS_MADE"; }
    mkdir -p "$GUI_APP/gui-v2" "$APPS/enabled" \
        && cp "$page" "$GUI_APP/gui-v2/$NAME.json.tmp" \
        && mv -f "$GUI_APP/gui-v2/$NAME.json.tmp" "$GUI_APP/gui-v2/$NAME.json" \
        && ln -sfn "$GUI_APP" "$APPS/enabled/$NAME" \
        || { warn "could not install the GX screen page in $GUI_APP"; return 0; }
    say "GX screen: Settings > Integrations > UI Plugins > phaeton, and on the charger's page (gui-v2 v1.2.14 or later)"
}

remove_gui_page() {
    rm -f "$APPS/enabled/$NAME"
    rm -rf "$GUI_APP"
    if [ -f "$APPS_MADE" ]; then
        rmdir "$APPS/enabled" "$APPS/available" "$APPS" 2>/dev/null || true
        rm -f "$APPS_MADE"
    fi
}

write_service_scripts() {
    mkdir -p "$DEST/service/log" "$LOG_DIR"
    for f in run log/run; do
        sed -e "s|/data/phaeton|$DEST|g" -e "s|/var/log/phaeton|$LOG_DIR|g" \
            "$SRC/service/$f" > "$DEST/service/$f.tmp" || die "cannot write $DEST/service/$f"
        chmod 755 "$DEST/service/$f.tmp"
        mv -f "$DEST/service/$f.tmp" "$DEST/service/$f"
    done
}

# ---- actions ------------------------------------------------------------------------------------

do_install() {
    SRC=$(cd "$(dirname "$0")" && pwd -P)
    if [ -d "$DEST" ] && [ "$SRC" = "$(cd "$DEST" && pwd -P)" ]; then
        # the installed copy (/data/phaeton/install.sh): reinstall the current version from
        # its own directory (repairs its venv, the service scripts, the link, the boot line)
        SRC=$(cd "$CURRENT" 2>/dev/null && pwd -P) \
            || die "$DEST has no current version: run install.sh from an unpacked release"
    fi
    for f in config.yaml service/run service/log/run; do
        [ -f "$SRC/$f" ] || die "$SRC/$f is missing: run install.sh from an unpacked release"
    done
    [ -n "$PYTHON" ] && "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        2>/dev/null || die "phaeton needs Python >= 3.11 (${PYTHON:-no python3 found})"
    if [ -f "$SRC/VERSION" ]; then VERSION=$(cat "$SRC/VERSION")
    else VERSION=$(sed -n 's/^ *version="\([^"]*\)".*/\1/p' "$SRC/setup.py"); fi
    [ -n "$VERSION" ] || die "cannot tell the version of $SRC"

    from=$(installed_version)
    if [ -n "$from" ]; then say "upgrading phaeton $from -> $VERSION in $DEST"
    else say "installing phaeton $VERSION in $DEST"; fi
    mkdir -p "$VERSIONS" || die "cannot create $VERSIONS"
    finish_interrupted_update

    # the version's own directory beside the running one: versions/<version>/{release, venv}
    VDIR="$VERSIONS/$VERSION"
    if [ -d "$VDIR" ] && [ "$SRC" = "$(cd "$VDIR" && pwd -P)" ]; then
        VENV="$VDIR/venv"             # repairing the installed version in place
        WHEELS="$VDIR/wheels"
        system_packages
        install_venv
    else
        stage_version
    fi
    SRC=$VDIR

    cp "$VDIR/install.sh" "$DEST/install.sh.tmp" && chmod 755 "$DEST/install.sh.tmp" \
        && mv -f "$DEST/install.sh.tmp" "$DEST/install.sh" || die "cannot copy install.sh"
    sed "s|^data_dir: /data/phaeton |data_dir: $DEST |" "$SRC/config.yaml" > "$DEST/config.yaml.sample"
    if [ -f "$DEST/config.yaml" ]; then
        say "config.yaml: kept (the new sample with every key is config.yaml.sample)"
    else
        cp "$DEST/config.yaml.sample" "$DEST/config.yaml"
        say "config.yaml: written from the sample; set charger.alfen.host (or the ocpp section)"
    fi
    choose_password
    if ! "$VENV/bin/python" -I -m phaeton check-config "$DEST/config.yaml"; then
        warn "config.yaml has problems (above): the service will not start until they are fixed"
    fi

    write_service_scripts
    install_gui_page
    old=$(linked_version "$CURRENT")
    if [ "$old" != "$VERSION" ]; then
        if [ -n "$old" ] && [ -d "$VERSIONS/$old" ]; then
            switch_link "$old" "$PREVIOUS" || die "cannot link $PREVIOUS"
        fi
        switch_link "$VERSION" "$CURRENT" || die "cannot link $CURRENT"
    fi
    say "current -> versions/$VERSION$( [ -L "$PREVIOUS" ] && printf ', previous -> versions/%s' "$(linked_version "$PREVIOUS")")"
    rc_add_line
    link_service
    if supervised "$DEST/service"; then
        svc -t "$DEST/service" && say "service restarted with the new version"
    else
        say "service linked: svscan starts it within 5 s"
    fi
    if { [ -d "$LEGACY_VENV" ] && [ ! -L "$LEGACY_VENV" ]; } || [ -f "$DEST/VERSION" ]; then
        rm -rf "$LEGACY_VENV" "$DEST/wheels" "$DEST/wheels.new" "$DEST/VERSION"
        say "moved to the layout with versions/ (docs/update.md); config and data kept"
    fi
    # /data/phaeton/venv keeps working for commands and scripts written before versions/
    [ -e "$LEGACY_VENV" ] || ln -sfn current/venv "$LEGACY_VENV" || warn "cannot link $LEGACY_VENV"
    rm -rf "$VDIR.old"
    prune_versions
    say "done. Status: $DEST/install.sh$ROOT_ARG --status   Logs: tail -F $LOG_DIR/current | tai64nlocal"
}

do_boot() {
    [ -L "$CURRENT" ] || exit 0
    finish_interrupted_update
    VDIR=$(cd "$CURRENT" 2>/dev/null && pwd -P) || die "$CURRENT names no version directory"
    VENV="$VDIR/venv"
    WHEELS="$VDIR/wheels"
    if ! venv_works; then
        # a firmware update replaces Python and the packages from the feed
        system_packages
        install_venv
    fi
    link_service
}

do_status() {
    if [ ! -L "$CURRENT" ]; then
        if [ -f "$DEST/VERSION" ]; then
            say "phaeton $(cat "$DEST/VERSION") installed in $DEST in the layout before versions/"
            say "  (run the install.sh of this or a newer release to move it; config and data are kept)"
        else
            say "phaeton: not installed in $DEST"
            [ -f "$DEST/config.yaml" ] && say "  config.yaml and data are left from an earlier install"
        fi
        return 1
    fi
    version=$(linked_version "$CURRENT")
    VENV="$CURRENT/venv"
    say "phaeton $version installed in $DEST (current -> $(readlink "$CURRENT"))"
    previous=$(linked_version "$PREVIOUS")
    if [ -n "$previous" ] && [ -d "$VERSIONS/$previous" ]; then
        say "  previous: $previous (phaeton update rollback returns to it)"
    fi
    if [ -f "$PENDING" ]; then
        say "  update: switching to $(sed -n 's/^to=//p' "$PENDING") (running, or interrupted: phaeton update status)"
    fi
    if venv_works; then say "  venv: ok ($("$VENV/bin/python" -I -V 2>&1))"
    else say "  venv: BROKEN (re-run install.sh)"; fi
    if [ -L "$SERVICE_LINK" ]; then say "  service link: $SERVICE_LINK -> $(readlink "$SERVICE_LINK")"
    else say "  service link: MISSING (re-run install.sh, or reboot)"; fi
    if [ -f "$RC_LOCAL" ] && grep -q -F "$RC_MARKER" "$RC_LOCAL"; then say "  boot: line in $RC_LOCAL"
    else say "  boot: NO line in $RC_LOCAL (re-run install.sh)"; fi
    say "  config: $DEST/config.yaml"
    say "  logs: $LOG_DIR/current"
    running=1
    for d in "$DEST/service" "$DEST/service/log"; do
        if supervised "$d"; then
            state=$(svstat "$d" 2>&1)
            say "  $state"
            case "$state" in *": up "*) ;; *) running=0 ;; esac
        else
            say "  $d: not supervised"
            running=0
        fi
    done
    # which version runs: current's, unless the process started before current was switched
    state=$(svstat "$DEST/service" 2>/dev/null)
    case "$state" in
        *": up "*)
            up_s=$(printf '%s\n' "$state" | sed -n 's/.*) \([0-9]*\) seconds.*/\1/p')
            pid=$(printf '%s\n' "$state" | sed -n 's/.*(pid \([0-9]*\)).*/\1/p')
            switched=$(stat -c %Y "$CURRENT" 2>/dev/null || echo 0)
            now=$(date +%s)
            if [ -n "$up_s" ] && [ "$up_s" -gt $((now - switched)) ]; then
                say "  running: the version before $version (started before current was switched; svc -t $SERVICE_LINK restarts it)"
            else
                say "  running: phaeton $version (pid $pid, up ${up_s:-?} s)"
            fi ;;
        *) say "  running: nothing (the service is not up)" ;;
    esac
    [ $running = 1 ]
}

do_uninstall() {
    stop_service
    remove_gui_page
    rc_remove_line
    rc_restore
    rm -rf "$LOG_DIR"
    [ -d "$DEST" ] || { say "phaeton was not installed"; return 0; }
    if [ "$KEEP_DATA" = 0 ]; then
        rm -rf "$DEST"
        say "phaeton removed, with its config and data"
        return 0
    fi
    rm -rf "$VERSIONS" "$CURRENT" "$PREVIOUS" "$PENDING" "$DEST/service" "$DEST/install.sh" \
        "$DEST/config.yaml.sample" "$DEST/update-download" "$DEST/update-status.json" \
        "$LEGACY_VENV" "$DEST/wheels" "$DEST/wheels.new" "$DEST/VERSION" "$RC_WAS"
    rm -f "$DEST"/.current.*.tmp "$DEST"/.previous.*.tmp "$DEST"/.install.sh.tmp \
        "$DEST"/.update-status.json.*.tmp
    rmdir "$DEST" 2>/dev/null || true
    if [ -d "$DEST" ]; then
        say "phaeton removed; kept in $DEST: $(ls -A "$DEST" | tr '\n' ' ')"
        say "(remove them too with: rm -rf $DEST)"
    else
        say "phaeton removed"
    fi
}

case "$ACTION" in
    install) do_install ;;
    boot) do_boot ;;
    status) do_status ;;
    uninstall) do_uninstall ;;
esac
