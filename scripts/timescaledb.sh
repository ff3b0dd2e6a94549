#!/usr/bin/env bash
# Build and run a PostgreSQL 17 + TimescaleDB server for the wattwise test suite.
#
# TimescaleDB is not packaged for Debian bookworm, so this script bootstraps a
# minimal Debian trixie root (debootstrap), installs postgresql-17 and
# postgresql-17-timescaledb into it and runs the cluster with chroot.
#
# Usage: scripts/timescaledb.sh [start|stop|status|destroy]
#   start    (default) build the root if missing, mount /proc, /dev, /dev/shm
#            and /sys into it, start the server if it is not running, wait until
#            it accepts connections, and print the DSN alone on the last line
#            of stdout.
#   stop     stop the server and unmount the filesystems mounted into the root.
#   status   print the DSN on stdout and exit 0 if the server accepts
#            connections; exit 3 if it is built but not running, 4 if not built.
#   destroy  stop the server and delete the root (the next start rebuilds it).
#
# All progress messages go to stderr.  Must run as root.
#
# Environment:
#   WATTWISE_TSDB_ROOT    root directory (default /var/lib/wattwise/timescaledb-root);
#                         kept outside the repository so later runs reuse it.
#   WATTWISE_TSDB_PORT    TCP port on 127.0.0.1 (default 5433).
#   WATTWISE_TSDB_MIRROR  Debian mirror for debootstrap (default: the mirror the
#                         host's apt sources use for its own release).
set -euo pipefail

ROOT=${WATTWISE_TSDB_ROOT:-/var/lib/wattwise/timescaledb-root}
PORT=${WATTWISE_TSDB_PORT:-5433}
PG_MAJOR=17
SUITE=trixie
CLUSTER=main
READY_TIMEOUT=60

ROOT=${ROOT%/}
PARENT=$(dirname -- "$ROOT")
NAME=$(basename -- "$ROOT")
LOG="$PARENT/$NAME.build.log"
LOCK="$PARENT/.$NAME.lock"
MARKER_REL=.wattwise-timescaledb-complete
CONF_REL=etc/postgresql/$PG_MAJOR/$CLUSTER/conf.d/zz-wattwise.conf
HBA_REL=etc/postgresql/$PG_MAJOR/$CLUSTER/pg_hba.conf
PGDATA_REL=var/lib/postgresql/$PG_MAJOR/$CLUSTER
SERVER_LOG_REL=var/log/postgresql/postgresql-$PG_MAJOR-$CLUSTER.log
DSN="postgresql://postgres@127.0.0.1:$PORT/postgres"
# Mount points inside the root, in mount order (unmounted in reverse).
MOUNTS=(proc sys dev dev/shm)

log() { printf 'timescaledb.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo pipefail$/{/^#/s/^# \{0,1\}//p}' "$0" >&2
}

# Run a command inside a root with a clean environment.  The lock descriptor
# is closed so that the server (a long-lived child) does not keep holding it.
in_chroot() {
    local dir=$1
    shift
    chroot "$dir" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
        "$@" 9>&-
}

# The mirror the host's apt uses for its own release, from sources.list
# (one-line format) or sources.list.d/*.sources (deb822 format).
detect_mirror() {
    if [[ -n ${WATTWISE_TSDB_MIRROR:-} ]]; then
        printf '%s\n' "$WATTWISE_TSDB_MIRROR"
        return
    fi
    local codename f uri
    # shellcheck source=/dev/null
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
    [[ -n $codename ]] || die "cannot read VERSION_CODENAME from /etc/os-release; set WATTWISE_TSDB_MIRROR"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        uri=$(awk -v suite="$codename" '
            /^[ \t]*deb[ \t]/ {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite && $i ~ /^(https?|ftp):\/\//) { print $i; exit }
            }' "$f")
        if [[ -n $uri ]]; then printf '%s\n' "$uri"; return; fi
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        uri=$(awk -v suite="$codename" '
            function check() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " suite " ") && uris != "") {
                    split(uris, u, " ")
                    if (u[1] ~ /^(https?|ftp):\/\//) { print u[1]; found = 1; exit }
                }
                types = ""; uris = ""; suites = ""; enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { check(); next }
            {
                key = tolower($1); sub(/:$/, "", key)
                val = $0; sub(/^[^:]*:[ \t]*/, "", val); gsub(/[ \t]+/, " ", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "enabled") enabled = tolower(val)
            }
            END { if (!found) check() }' "$f")
        if [[ -n $uri ]]; then printf '%s\n' "$uri"; return; fi
    done
    die "no Debian mirror for '$codename' found in the host's apt sources; set WATTWISE_TSDB_MIRROR"
}

# Every mount point at or below $1, deepest first.
mounts_under() {
    local dir
    dir=$(realpath -m -- "$1")
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

umount_all_under() {
    local m
    while IFS= read -r m; do
        [[ -n $m ]] || continue
        umount "$m" 2>/dev/null || umount -l "$m" || log "warning: cannot unmount $m"
    done < <(mounts_under "$1")
}

# Delete a (partial) root; refuses while anything is still mounted below it.
remove_tree() {
    local dir=$1
    umount_all_under "$dir"
    if [[ -n $(mounts_under "$dir") ]]; then
        die "filesystems are still mounted under $dir; not deleting it"
    fi
    rm -rf --one-file-system -- "$dir"
}

mount_into() {
    local dir=$1 m
    for m in "${MOUNTS[@]}"; do
        mkdir -p "$dir/$m"
        mountpoint -q "$dir/$m" && continue
        case $m in
            proc) mount -t proc proc "$dir/proc" ;;
            sys) mount -t sysfs sysfs "$dir/sys" ;;
            dev) mount --bind /dev "$dir/dev" ;;
            dev/shm) mount --bind /dev/shm "$dir/dev/shm" ;;
        esac
    done
}

umount_from() {
    local dir=$1 i m
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        m="$dir/${MOUNTS[i]}"
        if mountpoint -q "$m"; then
            umount "$m" || log "warning: cannot unmount $m"
        fi
    done
}

# postgresql.conf overrides; the port comes from the environment, so this is
# rewritten by every start.
desired_conf() {
    cat <<EOF
# Written by wattwise scripts/timescaledb.sh; rewritten on every start.
listen_addresses = '127.0.0.1'
port = $PORT
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 200
max_worker_processes = 32
timescaledb.max_background_workers = 16
# Throw-away test server: durability is not needed.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

desired_hba() {
    cat <<'EOF'
# Written by wattwise scripts/timescaledb.sh (test server: trust, loopback only).
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
EOF
}

# Write $2 to $1 if it differs; returns 0 if the file changed.
write_if_changed() {
    local file=$1 content=$2
    if [[ -f $file ]] && [[ $(<"$file") == "$content" ]]; then
        return 1
    fi
    printf '%s\n' "$content" >"$file"
    return 0
}

configure() {
    local dir=$1 changed=1
    write_if_changed "$dir/$CONF_REL" "$(desired_conf)" && changed=0
    write_if_changed "$dir/$HBA_REL" "$(desired_hba)" && changed=0
    return "$changed"
}

build() {
    local mirror tmp start
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    mirror=$(detect_mirror)
    start=$SECONDS

    # Leftovers of interrupted builds (we hold the lock, so none is running).
    for tmp in "$PARENT/.$NAME.build."*; do
        [[ -d $tmp ]] || continue
        log "removing unfinished build $tmp"
        remove_tree "$tmp"
    done
    if [[ -e $ROOT ]]; then
        log "removing incomplete root $ROOT (no completion marker)"
        remove_tree "$ROOT"
    fi

    tmp=$(mktemp -d "$PARENT/.$NAME.build.XXXXXX")
    chmod 755 "$tmp"
    BUILD_TMP=$tmp
    : >"$LOG"
    log "building Debian $SUITE root with PostgreSQL $PG_MAJOR + TimescaleDB in $tmp (mirror $mirror; log $LOG)"

    log "debootstrap --variant=minbase $SUITE ..."
    debootstrap --variant=minbase "$SUITE" "$tmp" "$mirror" >>"$LOG" 2>&1
    # debootstrap may leave its own mounts behind; start from a clean state.
    umount_all_under "$tmp"

    # Never start services from maintainer scripts; this script starts the cluster.
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod 755 "$tmp/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$tmp/etc/resolv.conf" 2>/dev/null || true

    mount_into "$tmp"
    log "apt-get install postgresql-$PG_MAJOR postgresql-$PG_MAJOR-timescaledb ..."
    {
        in_chroot "$tmp" apt-get update
        in_chroot "$tmp" apt-get install -y --no-install-recommends \
            "postgresql-$PG_MAJOR" "postgresql-$PG_MAJOR-timescaledb"
        if [[ ! -d $tmp/$PGDATA_REL ]]; then
            in_chroot "$tmp" pg_createcluster "$PG_MAJOR" "$CLUSTER"
        fi
        in_chroot "$tmp" apt-get clean
    } >>"$LOG" 2>&1
    umount_from "$tmp"

    [[ -d $tmp/$PGDATA_REL ]] || die "cluster $PG_MAJOR/$CLUSTER was not created"
    configure "$tmp" || true
    {
        printf 'built %s from %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$mirror"
        in_chroot "$tmp" dpkg-query -W "postgresql-$PG_MAJOR" "postgresql-$PG_MAJOR-timescaledb"
    } >"$tmp/$MARKER_REL"

    mv -T -- "$tmp" "$ROOT"
    BUILD_TMP=
    log "root built in $((SECONDS - start)) s"
}

on_exit() {
    local rc=$?
    if [[ -n ${BUILD_TMP:-} ]]; then
        log "build failed; last lines of $LOG:"
        tail -n 40 "$LOG" >&2 || true
        remove_tree "$BUILD_TMP" || true
    fi
    return "$rc"
}

is_built() { [[ -f $ROOT/$MARKER_REL ]]; }

# PID of the running postmaster of our root, if any.
server_pid() {
    local pidfile=$ROOT/$PGDATA_REL/postmaster.pid pid
    [[ -r $pidfile ]] || return 1
    read -r pid <"$pidfile" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    # Alive, and chrooted into this root (guards against PID reuse after a reboot).
    [[ $(readlink "/proc/$pid/root" 2>/dev/null) == "$(realpath -- "$ROOT")" ]] || return 1
    printf '%s\n' "$pid"
}

is_ready() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres
    else
        in_chroot "$ROOT" pg_isready -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres
    fi
}

pg_ctl_in_root() {
    in_chroot "$ROOT" pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" "$CLUSTER" "$@"
}

start_server() {
    local changed=1 i
    if ! is_built; then
        build
    fi
    mount_into "$ROOT"
    configure "$ROOT" && changed=0

    if server_pid >/dev/null; then
        if ((changed == 0)); then
            log "configuration changed; restarting the server"
            pg_ctl_in_root restart -m fast >&2 || server_failed
        fi
    else
        # No live process in this root owns postmaster.pid (server_pid checks
        # that), so a leftover one (crash, reboot: PIDs get reused) is stale.
        # Likewise the socket lock files in the root's own /run/postgresql.
        rm -f -- "$ROOT/$PGDATA_REL/postmaster.pid" "$ROOT"/run/postgresql/.s.PGSQL.*
        log "starting PostgreSQL $PG_MAJOR on 127.0.0.1:$PORT"
        pg_ctl_in_root start >&2 || server_failed
    fi

    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        if is_ready; then
            printf '%s\n' "$DSN"
            return 0
        fi
        sleep 0.1
    done
    log "server did not accept connections on 127.0.0.1:$PORT within ${READY_TIMEOUT}s"
    server_failed
}

server_failed() {
    log "last lines of $ROOT/$SERVER_LOG_REL:"
    tail -n 30 "$ROOT/$SERVER_LOG_REL" >&2 2>/dev/null || true
    exit 1
}

stop_server() {
    if ! is_built; then
        log "not built ($ROOT)"
        return 0
    fi
    if server_pid >/dev/null; then
        log "stopping server"
        mount_into "$ROOT"
        pg_ctl_in_root stop -m fast >&2
    else
        log "server is not running"
    fi
    umount_from "$ROOT"
}

status_server() {
    if ! is_built; then
        log "not built ($ROOT)"
        return 4
    fi
    local pid
    if pid=$(server_pid) && is_ready; then
        log "running (pid $pid) on 127.0.0.1:$PORT; root $ROOT"
        printf '%s\n' "$DSN"
        return 0
    fi
    if [[ -n ${pid:-} ]]; then
        log "server process $pid is running but not accepting connections on 127.0.0.1:$PORT"
    else
        log "stopped; root $ROOT"
    fi
    return 3
}

destroy_root() {
    stop_server
    if [[ -e $ROOT ]]; then
        log "deleting $ROOT"
        remove_tree "$ROOT"
    fi
}

main() {
    local cmd=${1:-start}
    case $cmd in
        start | stop | status | destroy) ;;
        -h | --help | help)
            usage
            return 0
            ;;
        *)
            usage
            return 2
            ;;
    esac
    [[ $EUID -eq 0 ]] || die "must run as root (chroot and mount)"
    [[ $PORT =~ ^[0-9]+$ ]] || die "WATTWISE_TSDB_PORT must be a number, got '$PORT'"
    [[ $ROOT == /* && $ROOT != / ]] || die "WATTWISE_TSDB_ROOT must be an absolute path, got '$ROOT'"

    mkdir -p -- "$PARENT"
    # Serialise concurrent invocations (e.g. parallel test sessions).
    exec 9>"$LOCK"
    flock 9

    BUILD_TMP=
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    case $cmd in
        start) start_server ;;
        stop) stop_server ;;
        status) status_server ;;
        destroy) destroy_root ;;
    esac
}

main "$@"
