#!/usr/bin/env bash
# newer-pythons.sh - the Pythons newer than the host's (3.13, 3.14, 3.15) for the test suite.
#
# Debian 12 ships Python 3.11 only; Debian sid has python3.13, python3.14 and python3.15. This
# script builds a minimal Debian sid chroot holding those interpreters, their development
# headers (python3.X-dev) and gcc with libc6-dev, for the project's C extension (nothing is added
# to the host's apt sources, no host package is upgraded; the one host package it installs is
# debootstrap), bind-mounts this repository at /repo inside it, and makes one virtual
# environment per version with the project installed (and its C extension compiled) the
# README's way:
#
#     pip install -e "/repo[test]"            (in /opt/venv3.13, /opt/venv3.14, /opt/venv3.15)
#
# Idempotent and cached: the chroot lives under /var/tmp (kept across reboots and CI runs on the
# same machine) and is built once; a package missing from it (a chroot cached by an older
# version of this script) is apt-installed into it; a venv is rebuilt only when what the install
# depends on changed (pyproject.toml, setup.py, the C sources, the interpreter) or its compiled
# extension no longer imports. A second run only checks and mounts (a few seconds).
#
# Usage (as root; from any clone, any working directory):
#   .ci/newer-pythons.sh [REPO_DIR]          set up; REPO_DIR defaults to the clone holding this file
#   .ci/newer-pythons.sh --run VERSION CMD   run CMD in /repo inside the chroot with that version's
#                                            venv first on PATH, e.g.
#                                            .ci/newer-pythons.sh --run 3.14 python -m pytest
#   .ci/newer-pythons.sh --mounted           exit 0 if the chroot's mounts are in place
#   .ci/newer-pythons.sh --umount            unmount everything this script mounted
#   .ci/newer-pythons.sh --rebuild [REPO]    throw the cached chroot away and set up again
#                                            (e.g. to pick up newer sid interpreters)
# Environment:
#   CK_PYTHONS_ROOT      chroot directory   (default /var/tmp/concurrency_kit-pythons/sid)
#   CK_PYTHONS_VERSIONS  versions           (default "3.13 3.14 3.15")
#   CK_PYTHONS_MIRROR    Debian mirror      (default: the one the host's apt uses)
#
# --run executes CMD in a private mount namespace with its own empty tmpfs at /dev/shm: the
# suite's leak checker fails a test for any new /dev/shm entry, so the test run must not see
# the entries of other programs on the machine (nor leave any behind on the host).
set -euo pipefail

ROOT="${CK_PYTHONS_ROOT:-/var/tmp/concurrency_kit-pythons/sid}"
VERSIONS="${CK_PYTHONS_VERSIONS:-3.13 3.14 3.15}"
SUITE=sid # python3.14 and python3.15 are only in sid (unstable)
NICE="nice -n 10"
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

say() { printf '[newer-pythons %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
    printf '[newer-pythons] ERROR: %s\n' "$*" >&2
    exit 1
}

# A typo in CK_PYTHONS_ROOT must never make `rm -rf "$ROOT"` remove something like /var.
case "$ROOT" in
/?*/?*) ;;
*) die "CK_PYTHONS_ROOT=$ROOT: give an absolute path at least two levels deep" ;;
esac
ROOT="${ROOT%/}"

# The Debian mirror the host's apt uses: the first "URIs:" (deb822) or "deb" line naming a
# .../debian archive, unless CK_PYTHONS_MIRROR says otherwise.
host_mirror() {
    sed -n -e 's|^URIs: *\([^ ]*/debian\)/\?$|\1|p' \
        -e 's|^deb \(\[[^]]*\] \)\?\([^ ]*/debian\)/\? .*|\2|p' \
        /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1 || true
}

# Run a command in the chroot with a clean environment: no host PIP_*, PYTHON* or VIRTUAL_ENV
# setting (they name host paths) reaches the chroot's pip or interpreters.
in_root() {
    chroot "$ROOT" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$@"
}

# The device:inode of a directory, to tell whether $ROOT/repo is a bind mount of this clone.
same_dir() { [ "$(stat -Lc %d:%i "$1")" = "$(stat -Lc %d:%i "$2")" ]; }

mounted() {
    local m
    for m in proc sys dev repo; do mountpoint -q "$ROOT/$m" || return 1; done
}

mount_all() {
    local repo="$1"
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    mountpoint -q "$ROOT/sys" || mount -t sysfs -o ro sysfs "$ROOT/sys"
    if ! mountpoint -q "$ROOT/dev"; then
        # The host's /dev with /dev/pts and /dev/shm; a slave, so nothing mounted below it in
        # the chroot (or in --run's namespaces) propagates back to the host's /dev.
        mount --rbind /dev "$ROOT/dev"
        mount --make-rslave "$ROOT/dev"
    fi
    mkdir -p "$ROOT/repo"
    # /repo is this clone: a mount left by another clone (or an older path) is replaced.
    if mountpoint -q "$ROOT/repo" && ! same_dir "$ROOT/repo" "$repo"; then
        say "/repo is another directory's bind mount; rebinding it to $repo"
        umount "$ROOT/repo"
    fi
    mountpoint -q "$ROOT/repo" || mount --bind "$repo" "$ROOT/repo"
}

umount_all() {
    local m
    for m in repo dev sys proc; do
        if mountpoint -q "$ROOT/$m"; then
            umount -R "$ROOT/$m" || umount -lR "$ROOT/$m" || die "cannot unmount $ROOT/$m"
        fi
    done
}

# Remove the chroot: only once nothing is mounted under it (a bind mount of the repository is
# on the same file system, so --one-file-system alone would not keep rm out of the clone).
remove_root() {
    umount_all
    if awk -v root="$ROOT/" 'index($5 "/", root) == 1 { found = 1 } END { exit !found }' \
        /proc/self/mountinfo; then
        die "something is still mounted under $ROOT (see /proc/self/mountinfo): not removing it"
    fi
    rm -rf --one-file-system "$ROOT"
}

run_in_chroot() {
    local v="$1"
    shift
    [ "$#" -gt 0 ] || die "--run $v: no command given"
    mounted || die "the chroot at $ROOT is not set up or not mounted: run $SELF first"
    # (the venv's python is a symlink to /usr/bin/python$v, which resolves inside the chroot only)
    [ -f "$ROOT/opt/venv$v/pyvenv.cfg" ] ||
        die "no venv for Python $v in $ROOT (versions set up: $VERSIONS); run $SELF first"
    # unshare: a new mount namespace whose mounts are slaves of the host's, so the tmpfs
    # mounted on /dev/shm below exists for CMD (and its children) only and vanishes with them.
    # CI is passed through: some tests and tools behave differently on CI.
    exec unshare --mount --propagation slave /bin/sh -c '
        root="$1" venvbin="$2" ci="$3"; shift 3
        mount -t tmpfs -o size=2g,mode=1777 ck-shm "$root/dev/shm" || exit 125
        exec chroot "$root" /usr/bin/env -i PATH="$venvbin:/usr/local/bin:/usr/bin:/bin" \
            HOME=/root LANG=C.UTF-8 ${ci:+CI="$ci"} VIRTUAL_ENV="${venvbin%/bin}" \
            /bin/sh -c "cd /repo && exec \"\$@\"" sh "$@"' \
        sh "$ROOT" "/opt/venv$v/bin" "${CI:-}" "$@"
}

case "${1:-}" in
--umount)
    umount_all
    exit 0
    ;;
--mounted)
    mounted
    exit
    ;;
--run)
    [ "$#" -ge 2 ] || die "usage: $SELF --run VERSION CMD..."
    v="$2"
    shift 2
    run_in_chroot "$v" "$@"
    ;;
--rebuild)
    shift
    REBUILD=1
    ;;
-h | --help)
    sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
-*) die "unknown option $1 (see $SELF --help)" ;;
esac

# ---- set up ------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "setting up needs root (debootstrap, chroot, mount)"
REPO="$(cd "${1:-$(dirname "$SELF")/..}" && pwd)"
[ -f "$REPO/pyproject.toml" ] || die "$REPO has no pyproject.toml: give the repository's path"
MIRROR="${CK_PYTHONS_MIRROR:-$(host_mirror)}"
[ -n "$MIRROR" ] || die "no Debian mirror found in the host's apt sources; set CK_PYTHONS_MIRROR"
t0=$(date +%s)

# One setup at a time on a machine (two CI runs would otherwise debootstrap into one directory).
mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock -w 1800 9 || die "another setup holds $ROOT.lock for more than 30 minutes"

if [ "${REBUILD:-0}" = 1 ] && [ -e "$ROOT" ]; then
    say "--rebuild: removing $ROOT"
    remove_root
fi

# 1. debootstrap on the host: Debian 12's own package.
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap on the host (apt-get)"
    apt-get update -qq || die "apt-get update failed on the host"
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
        die "cannot install debootstrap on the host"
fi

# 2. A minbase sid chroot with the interpreters, their headers and a C compiler (1 to 4
#    minutes; ~1 GB with apt's downloaded packages). pip install -e compiles
#    concurrency_kit._core._native (setup.py) with the interpreter's sysconfig CC
#    (x86_64-linux-gnu-gcc, from gcc) against Python.h (from python3.X-dev) and libc's headers
#    (libc6-dev: only a Recommends of gcc, so named here). The marker file is written last, so
#    an interrupted or failed debootstrap is started over, never reused.
wanted="ca-certificates gcc libc6-dev"
for v in $VERSIONS; do wanted="$wanted python$v python$v-venv python$v-dev"; done
if [ ! -f "$ROOT/.ck-debootstrap-done" ]; then
    pkgs="$(echo "$wanted" | tr ' ' ',')"
    remove_root
    mkdir -p "$ROOT"
    say "debootstrap $SUITE from $MIRROR into $ROOT ($pkgs); log: $ROOT.debootstrap.log"
    if ! $NICE debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$ROOT" "$MIRROR" \
        >"$ROOT.debootstrap.log" 2>&1; then
        tail -n 25 "$ROOT.debootstrap.log" >&2
        die "debootstrap of Debian $SUITE failed (see above and $ROOT.debootstrap.log)"
    fi
    touch "$ROOT/.ck-debootstrap-done"
else # already built: add only what is not installed yet (a changed version list, or a
    #   chroot cached before this script wanted the compiler and headers)
    missing=""
    for p in $wanted; do
        [ "$(in_root dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] ||
            missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        say "adding to the chroot:$missing"
        cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
        mount_all "$REPO" # dpkg and the packages' scripts want /proc and /dev (with /dev/pts)
        # A host whose apt accepts an expired Release file (Acquire::Check-Valid-Until "false":
        # a frozen snapshot mirror, which the chroot uses too) has the chroot's apt accept it.
        apt="apt-get"
        [ "$(eval "$(apt-config shell V Acquire::Check-Valid-Until)" && echo "${V:-}")" != false ] ||
            apt="apt-get -o Acquire::Check-Valid-Until=false"
        # shellcheck disable=SC2086
        in_root $NICE $apt update -qq || die "apt-get update failed in the chroot"
        # shellcheck disable=SC2086
        in_root $NICE $apt install -y -qq --no-install-recommends $missing >/dev/null ||
            die "apt-get install$missing failed in the chroot"
    fi
fi

# 3. Name resolution and the host's extra CA certificates (a TLS-inspecting proxy's, say), so
#    that pip in the chroot reaches PyPI as the host's pip does.
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    ca_stamp="$(cat /usr/local/share/ca-certificates/*.crt | sha256sum | cut -c1-16)"
    if [ "$(cat "$ROOT/etc/ssl/.ck-host-ca" 2>/dev/null)" != "$ca_stamp" ]; then
        say "copying the host's extra CA certificates"
        cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
        in_root update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed"
        echo "$ca_stamp" >"$ROOT/etc/ssl/.ck-host-ca"
    fi
fi

# 4. Mounts: /proc, /sys (read-only), /dev (with /dev/pts, /dev/shm), this clone at /repo.
mount_all "$REPO"

# 5. One venv per version with the project and its test extras (about a minute each). The
#    stamp covers what the install depends on: pyproject.toml, setup.py, the C sources (an
#    editable install compiles the extension once: a changed .c needs a new install) and the
#    interpreter's version. The import check catches a compiled module removed since (git clean).
sources_digest() {
    local f
    for f in "$REPO/pyproject.toml" "$REPO/setup.py"; do [ ! -f "$f" ] || cat "$f"; done
    [ -d "$REPO/src" ] || return 0
    (cd "$REPO" && find src -name '*.[ch]' -type f | LC_ALL=C sort) | while read -r f; do
        printf '%s\n' "$f" && cat "$REPO/$f"
    done
}
imports="concurrency_kit, pytest"
[ ! -f "$REPO/src/concurrency_kit/_core/_native.c" ] ||
    imports="$imports, concurrency_kit._core._native"
for v in $VERSIONS; do
    venv="/opt/venv$v"
    stamp="$( (sources_digest && in_root "python$v" -VV) | sha256sum | cut -c1-16)"
    if [ "$(cat "$ROOT$venv/.ck-stamp" 2>/dev/null)" = "$stamp" ] &&
        in_root "$venv/bin/python" -c "import $imports" 2>/dev/null; then
        say "venv $v is up to date"
        continue
    fi
    say "building venv $v (pip install -e \"/repo[test]\")"
    rm -rf "${ROOT:?}$venv"
    in_root "python$v" -m venv "$venv" || die "python$v -m venv failed in the chroot"
    in_root $NICE "$venv/bin/python" -m pip install -q --upgrade pip ||
        die "upgrading pip in the Python $v venv failed"
    in_root $NICE "$venv/bin/python" -m pip install -q -e "/repo[test]" ||
        die "pip install -e \"/repo[test]\" failed for Python $v (see pip's message above)"
    echo "$stamp" >"$ROOT$venv/.ck-stamp"
done

for v in $VERSIONS; do in_root "/opt/venv$v/bin/python" -VV; done
say "ready in $(($(date +%s) - t0)) s: $ROOT"
say "run: $SELF --run 3.14 python -m pytest     unmount: $SELF --umount"
