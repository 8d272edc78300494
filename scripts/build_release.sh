#!/usr/bin/env bash
# Builds dist/phaeton-<version>.tar.gz: the release a GX owner copies to /data and installs,
# offline if need be (docs/install.md):
#   phaeton-<version>/{install.sh, VERSION, config.yaml, service/, docs/, README.md, setup.py,
#                      phaeton/, velib/, wheels/}
# wheels/ holds phaeton's own wheel and every runtime dependency that exists as a pure-Python
# (py3-none-any) wheel, plus armv7l (32-bit GX) wheels for the GX's Python where PyPI has them.
# numpy and PyYAML have neither: install.sh takes them from Venus' package feed
# (opkg install python3-numpy python3-pyyaml); wheels/README.txt lists what is left out.
#
#   scripts/build_release.sh                    the full release (downloads wheels from PyPI)
#   scripts/build_release.sh --without-dependencies
#                                               phaeton's wheel only (the GX then needs the
#                                               dependencies from its feed or PyPI)
#   scripts/build_release.sh --version V        build it as version V (setup.py's and
#                                               phaeton/__init__.py's version in the staged
#                                               copy; the source tree is not changed): test
#                                               releases and release candidates
# Publishing it for self-update (docs/update.md): upload the tarball, its .sha256 and its
# Ed25519 signature .sig (openssl pkeyutl -sign -rawin) as assets of a release.
# Env: PYTHON (default python3), GX_PYTHON_VERSIONS (default "3.12 3.11").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$(pwd)
PY=${PYTHON:-python3}
GX_PYTHON_VERSIONS=${GX_PYTHON_VERSIONS:-"3.12 3.11"}
WITH_DEPS=1
VERSION_OVERRIDE=""
OUT_DIR="$ROOT_DIR/dist"
while [ $# -gt 0 ]; do
    case "$1" in
        --without-dependencies) WITH_DEPS=0 ;;
        --out) OUT_DIR=$2; shift ;;
        --version) VERSION_OVERRIDE=$2; shift ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "build_release.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

VERSION=$(sed -n 's/^ *version="\([^"]*\)".*/\1/p' setup.py)
[ -n "$VERSION" ] || { echo "build_release.sh: no version in setup.py" >&2; exit 1; }
if [ -n "$VERSION_OVERRIDE" ]; then
    [[ "$VERSION_OVERRIDE" =~ ^[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?$ ]] \
        || { echo "build_release.sh: --version $VERSION_OVERRIDE is not like 1.2.3 or 1.2.3b1" >&2; exit 2; }
    VERSION=$VERSION_OVERRIDE
fi
NAME="phaeton-$VERSION"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/$NAME"
mkdir -p "$STAGE/wheels" "$OUT_DIR"

# 1. the files a GX owner needs, without caches
tar -C "$ROOT_DIR" --exclude='__pycache__' --exclude='*.pyc' -cf - \
    install.sh config.yaml service docs README.md setup.py phaeton velib | tar -C "$STAGE" -xf -
printf '%s\n' "$VERSION" > "$STAGE/VERSION"
if [ -n "$VERSION_OVERRIDE" ]; then
    sed -i "s/^\( *version=\)\"[^\"]*\"/\1\"$VERSION\"/" "$STAGE/setup.py"
    sed -i "s/^__version__ = .*/__version__ = \"$VERSION\"/" "$STAGE/phaeton/__init__.py"
fi

# 2. phaeton's own wheel (pure Python)
#    (built from a copy: setuptools leaves build/ and *.egg-info behind in the source tree)
mkdir -p "$WORK/src"
tar -C "$STAGE" -cf - setup.py README.md phaeton velib | tar -C "$WORK/src" -xf -
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$STAGE/wheels" "$WORK/src" 2>/dev/null \
    || "$PY" -m pip wheel -q --no-deps -w "$STAGE/wheels" "$WORK/src"

# 3. the runtime dependencies
notes="$STAGE/wheels/README.txt"
{
    echo "Wheels for an offline install of $NAME (install.sh uses them with pip --no-index)."
    echo "numpy and PyYAML are not pure Python and PyPI has no 32-bit ARM (armv7l) wheels"
    echo "for them: on the GX they come from Venus' package feed:"
    echo "    opkg update && opkg install python3-numpy python3-pyyaml"
    echo "(install.sh does this by itself when the GX is online)."
} > "$notes"
if [ "$WITH_DEPS" = 1 ]; then
    # resolve the dependency set once (host wheels), then fetch what the GX can use
    "$PY" -m pip download -q --only-binary=:all: -d "$WORK/resolved" "$STAGE"/wheels/phaeton-*.whl
    missing=()
    for f in "$WORK"/resolved/*.whl; do
        base=$(basename "$f")
        dist=${base%%-*}; rest=${base#*-}; ver=${rest%%-*}
        case "$dist" in phaeton|numpy) continue ;; esac
        if [[ "$base" == *-py3-none-any.whl || "$base" == *-py2.py3-none-any.whl ]]; then
            cp "$f" "$STAGE/wheels/"; continue
        fi
        if "$PY" -m pip download -q --no-deps --only-binary=:all: --platform any \
                --implementation py --abi none --python-version 3.12 -d "$STAGE/wheels" \
                "$dist==$ver" 2>/dev/null; then
            continue
        fi
        got_arm=0
        for pv in $GX_PYTHON_VERSIONS; do
            tag=cp${pv/./}
            if "$PY" -m pip download -q --no-deps --only-binary=:all: \
                    --platform manylinux2014_armv7l --platform manylinux_2_17_armv7l \
                    --implementation cp --python-version "$pv" --abi "$tag" --abi abi3 \
                    -d "$STAGE/wheels" "$dist==$ver" 2>/dev/null; then
                got_arm=1
            fi
        done
        [ $got_arm = 1 ] || missing+=("$dist==$ver")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "Not bundled (no pure or armv7l wheel): ${missing[*]}" >> "$notes"
    fi
else
    echo "Built --without-dependencies: only phaeton's own wheel is here." >> "$notes"
fi

tar -C "$WORK" -czf "$OUT_DIR/$NAME.tar.gz" "$NAME"
echo "$OUT_DIR/$NAME.tar.gz"
ls "$STAGE/wheels" | sed 's/^/  /'
