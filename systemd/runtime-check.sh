#!/usr/bin/env bash
# shellcheck disable=SC2016  # awk programs in single quotes are run inside the container
# Runs treadctl@.service and treadctl-clinic.service, unchanged, under a real systemd and checks
# what they do there.
#
# Boots the host's own systemd in a container (systemd-nspawn over an overlay of the host's root,
# changes kept in memory, mounts in a private mount namespace), then inside it: a mosquitto that
# needs a password, `treadctl sim --driver woodway` on a pty made to look like a ttyUSB node
# (root:dialout 0660), the units installed as shipped, the passwords as systemd credentials.
# The clinic service's checks run while the daemon waits out RestartSec= and its watchdog.
# Prints one PASS/FAIL line per assertion; exit 1 if any failed. Leaves nothing behind on the
# host (mounts, cgroups, processes, temporary files; apt packages are .ci/run's).
# What each assertion means and why the container is booted this way: docs/systemd.md.
#
# Usage: bash systemd/runtime-check.sh [--require]
#   Needs root, systemd-nspawn (apt install systemd-container), mosquitto, mosquitto-clients,
#   uv, a Python 3.11 at /usr/bin/python3, a machine whose PID 1 is not systemd, cgroup v2.
#   Without them it says why and exits 0 (skipped); with --require (CI) it exits 1 instead.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
instance=ci                      # treadctl@ci, device.id "ci"
unit="treadctl@$instance.service"
clinic=treadctl-clinic.service
person=rt-k                      # the person the clinic checks create
link=/run/treadsim/ttyUSB0       # the simulator's pty, under a ttyUSB-like name
export SYSTEMD_COLORS=0 SYSTEMD_PAGER=cat LC_ALL=C.UTF-8

# --- stage 2: runs in a private mount namespace (unshare), prepares the root, execs nspawn -----
if [ "${1:-}" = "--stage" ]; then
    tmp=$2 name=$3 uv_bin=$4
    fs=$tmp/fs root=$tmp/fs/root
    mount -t tmpfs -o mode=0755 tmpfs "$fs"
    mkdir "$fs/upper" "$fs/work" "$root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$fs/upper,workdir=$fs/work" "$root"

    # The source tree at the unit's path, and its venv built there (ProtectHome= hides /root:
    # the system's python3, bytecode compiled as docs/systemd.md says). One venv with the clinic
    # extra for both units, as on a machine that runs both: the daemon's checks run from it too,
    # and tests/test_extras.py proves the daemon imports none of the extras' packages.
    mkdir -p "$root/opt/treadctl"
    (cd "$repo" && tar -cf - --exclude=__pycache__ pyproject.toml uv.lock README.md treadctl \
        systemd) | tar -xf - -C "$root/opt/treadctl"
    mount --bind /proc "$root/proc"
    mount --bind /dev "$root/dev"
    chroot "$root" env UV_LINK_MODE=copy UV_NO_PROGRESS=1 "$uv_bin" sync --quiet \
        --project /opt/treadctl --locked --no-dev --extra clinic --compile-bytecode \
        --python /usr/bin/python3
    chroot "$root" /opt/treadctl/.venv/bin/python -m compileall -q /opt/treadctl/treadctl
    umount "$root/proc" "$root/dev"

    # The unit exactly as shipped. A minimal boot target: basic.target and nothing of the host's
    # multi-user.target (databases, getty, cron...), timers masked (apt-daily would run).
    install -m 0644 "$here/treadctl@.service" "$root/etc/systemd/system/treadctl@.service"
    install -m 0644 "$here/$clinic" "$root/etc/systemd/system/$clinic"
    cat >"$root/etc/systemd/system/treadctl-check.target" <<'EOF'
[Unit]
Description=treadctl runtime check
Requires=basic.target
After=basic.target
EOF
    for masked in timers.target systemd-timesyncd.service mosquitto.service; do
        ln -sf /dev/null "$root/etc/systemd/system/$masked"
    done
    # Whatever an installed treadctl left on this host is not what is being checked.
    rm -rf "$root"/etc/systemd/system/treadctl@*.d "$root"/run/systemd/system/treadctl@*.d \
        "$root"/{etc,run}/systemd/system/"$clinic".d "$root"/etc/credstore/treadctl-clinic.* \
        "$root/var/lib/private/treadctl" "$root/var/lib/treadctl"

    # --register=no --keep-unit: no host systemd to ask for a scope (nspawn creates payload/ and
    # supervisor/ in the cgroup it was started in: stage 1 made a fresh one).
    # --system-call-filter=bpf: without bpf() systemd silently leaves DevicePolicy= unenforced.
    # SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1: pure cgroup v2 inside, like a stock Debian 12 (the v1
    # devices controller would be read-only inside). --link-journal=no: the journal stays inside.
    export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
    exec systemd-nspawn --quiet --boot --directory="$root" --machine="$name" \
        --register=no --keep-unit --private-network --system-call-filter=bpf \
        --link-journal=no --console=read-only systemd.unit=treadctl-check.target
fi

# --- stage 1: the host side ------------------------------------------------------------------
require=0
if [ "${1:-}" = "--require" ]; then
    require=1
elif [ -n "${1:-}" ]; then
    echo "usage: $0 [--require]" >&2
    exit 2
fi

skip() {
    if [ "$require" = 1 ]; then
        echo "runtime-check: cannot run: $*" >&2
        exit 1
    fi
    echo "runtime-check: SKIPPED (not a failure): $*"
    exit 0
}

[ "$(id -u)" = 0 ] || skip "needs root (it boots a container and creates cgroups)"
command -v systemd-nspawn >/dev/null \
    || skip "systemd-nspawn not found (Debian: apt install systemd-container)"
for tool in nsenter unshare; do
    command -v "$tool" >/dev/null || skip "$tool not found (util-linux)"
done
for tool in mosquitto mosquitto_passwd mosquitto_sub; do
    command -v "$tool" >/dev/null || skip "$tool not found (apt install mosquitto mosquitto-clients)"
done
[ "$(cat /proc/1/comm)" != systemd ] \
    || skip "PID 1 is systemd here; this check is written for a machine without it (like CI's)," \
        "where it creates its own cgroups and boots systemd in a container"
if [ -f /sys/fs/cgroup/unified/cgroup.procs ]; then
    cgroup_roots=(/sys/fs/cgroup/unified)     # hybrid: v2 here, plus systemd's named v1 one
    [ -d /sys/fs/cgroup/systemd ] && cgroup_roots+=(/sys/fs/cgroup/systemd)
elif [ -f /sys/fs/cgroup/cgroup.procs ] && [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    cgroup_roots=(/sys/fs/cgroup)             # pure cgroup v2
else
    skip "no cgroup v2 hierarchy mounted (needed for systemd's device policy)"
fi
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null \
    || skip "the kernel has no overlayfs"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3 (the service's venv is built on it)"
command -v uv >/dev/null || skip "uv not found"
# The venv is built by uv in a chroot of the overlay: that needs uv's binary itself, not a pyenv
# or asdf shim (a script that needs its tool's environment).
is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }
uv_bin=$(readlink -f "$(command -v uv)")
is_elf "$uv_bin" || uv_bin=$(python3 -c 'import uv; print(uv.find_uv_bin())' 2>/dev/null || true)
is_elf "$uv_bin" || uv_bin=$(pyenv which uv 2>/dev/null || true)
is_elf "$uv_bin" || skip "cannot find uv's binary (only a wrapper: $(command -v uv))"

started=$SECONDS
name="treadctl-rt-$$"
tmp=$(mktemp -d /tmp/treadctl-rt.XXXXXX)
mkdir "$tmp/fs"
launcher=""
leader=""
container_exit=""
fails=0
secret="rt-secret-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
checker_pw="rt-check-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
clinic_secret="rt-clinic-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

# Every process of the container is in our cgroups: kill what is left, remove them, then the
# temporary directory (the tmpfs and overlay were in the private mount namespace, gone with it).
teardown() {
    local cg pids _
    if [ -n "$leader" ] && kill -0 "$leader" 2>/dev/null; then
        kill -s SIGRTMIN+4 "$leader" 2>/dev/null || true   # systemd: poweroff
    fi
    if [ -n "$launcher" ]; then
        for _ in $(seq 150); do
            kill -0 "$launcher" 2>/dev/null || break
            sleep 0.2
        done
    fi
    for cg in "${cgroup_roots[@]}"; do
        [ -d "$cg/$name" ] || continue
        for _ in $(seq 50); do
            pids=$(find "$cg/$name" -name cgroup.procs -exec cat {} + 2>/dev/null || true)
            [ -z "$pids" ] && break
            # shellcheck disable=SC2086
            kill -9 $pids 2>/dev/null || true
            sleep 0.1
        done
        find "$cg/$name" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    if [ -n "$launcher" ]; then
        container_exit=0
        wait "$launcher" 2>/dev/null || container_exit=$?
        launcher=""
    fi
    rm -rf "$tmp"
}

on_exit() {
    local status=$?
    trap - EXIT INT TERM
    teardown
    exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pass() { printf 'PASS  %s\n' "$*"; }
fail() {
    printf 'FAIL  %s\n' "$*"
    fails=$((fails + 1))
}
# check DESCRIPTION COMMAND...: PASS or FAIL with the command's one-line output as the detail.
check() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then
        pass "$what${out:+: $out}"
    else
        fail "$what${out:+: $out}"
    fi
}
inside() { timeout 60 nsenter -t "$leader" -a -- "$@"; }
# wait_for SECONDS COMMAND...: until COMMAND succeeds (quietly), or fail after SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
show() { inside systemctl show -p "$1" --value "$unit"; }
journal() { inside journalctl --no-pager -q -o cat -u "$1"; }
in_journal() { journal "$1" | grep -qE -- "$2"; }
die() {
    fail "$*"
    if [ -n "$leader" ]; then
        echo "--- journal of $unit" >&2
        inside journalctl --no-pager -q -u "$unit" 2>&1 | tail -n 40 >&2 || true
    fi
    echo "--- container log" >&2
    tail -n 30 "$tmp/container.log" >&2 || true
    exit 1
}

echo "== runtime check: $(systemd-nspawn --version | head -n 1), container $name"
audits_before=$(dmesg 2>/dev/null | grep -c 'type=1326' || true)
trap 'echo "FAIL  unexpected error, line $LINENO: $BASH_COMMAND" >&2' ERR

# --- boot ------------------------------------------------------------------------------------
for cg in "${cgroup_roots[@]}"; do mkdir "$cg/$name"; done
(
    for cg in "${cgroup_roots[@]}"; do echo "$BASHPID" >"$cg/$name/cgroup.procs"; done
    exec unshare --mount --propagation private -- bash "$0" --stage "$tmp" "$name" "$uv_bin"
) >"$tmp/container.log" 2>&1 </dev/null &
launcher=$!

# The container's PID 1: nspawn's child whose PID in its own namespace is 1.
find_leader() {
    local pid
    for pid in $(cat "${cgroup_roots[0]}/$name"/payload/cgroup.procs 2>/dev/null) \
        $(find "${cgroup_roots[0]}/$name/payload" -mindepth 2 -name cgroup.procs \
            -exec cat {} + 2>/dev/null); do
        if grep -qE '^NSpid:\s+[0-9]+\s+1$' "/proc/$pid/status" 2>/dev/null; then
            leader=$pid
            return 0
        fi
    done
    return 1
}
deadline=$((SECONDS + 120))
until find_leader; do
    kill -0 "$launcher" 2>/dev/null || die "container: the launcher exited before booting"
    [ "$SECONDS" -lt "$deadline" ] || die "container: no PID 1 after 120 s"
    sleep 0.2
done
up=$((SECONDS - started))
# systemctl answers once PID 1 has its private socket; --wait then waits for the boot to finish.
wait_for 60 inside test -S /run/systemd/private || die "boot: systemd's socket never appeared"
state=$(inside timeout 60 systemctl is-system-running --wait 2>/dev/null || true)
if [ "$state" = running ] || [ "$state" = degraded ]; then
    failed_units=$(inside systemctl list-units --failed --plain --no-legend | awk '{print $1}' | xargs)
    pass "boot: container up after $up s (venv built first), systemd '$state' after" \
        "$((SECONDS - started)) s${failed_units:+; failed units: $failed_units}"
else
    die "boot: system state '$state'"
fi

# --- broker, simulator, unit, configuration, credential ----------------------------------------
inside install -d -m 0755 /etc/treadctl /etc/treadctl-rt
inside sh -c 'cat >/etc/treadctl-rt/mosquitto.conf' <<'EOF'
listener 1883 127.0.0.1
allow_anonymous false
password_file /etc/treadctl-rt/mosquitto.passwd
persistence false
log_dest stderr
EOF
inside mosquitto_passwd -b -c /etc/treadctl-rt/mosquitto.passwd treadctl "$secret"
inside mosquitto_passwd -b /etc/treadctl-rt/mosquitto.passwd rtcheck "$checker_pw"
inside mosquitto_passwd -b /etc/treadctl-rt/mosquitto.passwd clinic "$clinic_secret"
inside chmod 0644 /etc/treadctl-rt/mosquitto.passwd
inside systemd-run --quiet --unit=rt-mosquitto /usr/sbin/mosquitto -c /etc/treadctl-rt/mosquitto.conf
# The simulator as systemd starts things: stdin /dev/null, output to the journal.
inside systemd-run --quiet --unit=rt-treadsim -p RuntimeDirectory=treadsim \
    /opt/treadctl/.venv/bin/treadctl sim --driver woodway --link "$link"
wait_for 30 inside test -L "$link" || die "simulator: no $link after 30 s"
pty=$(inside readlink -f "$link")
wait_for 10 inside bash -c 'exec 3<>/dev/tcp/127.0.0.1/1883' || die "mosquitto: not listening"

inside sh -c "cat >/etc/treadctl/$instance.toml" <<EOF
[device]
id = "$instance"
driver = "woodway"
port = "$link"
[mqtt]
host = "127.0.0.1"
port = 1883
username = "treadctl"
password_file = "/run/credentials/$unit/mqtt_password"
EOF
inside install -d -m 0700 /etc/credstore
inside sh -c "umask 077 && cat >/etc/credstore/treadctl-$instance.mqtt_password" <<<"$secret"

# The clinic service on the same broker (its own user and credential, the unit's
# LoadCredential= name), its web API on a free port, its database the default: SQLite in the
# StateDirectory. Started now, in the background: it imports and migrates while the daemon's
# first checks run. `systemctl start` returns on READY=1 (Type=notify), or fails at
# TimeoutStartSec=.
probe() { inside python3 /opt/treadctl/systemd/runtime_probe.py "$@"; }
clinic_port=$(probe free-port)
api="http://127.0.0.1:$clinic_port/api"
inside sh -c 'cat >/etc/treadctl/clinic.toml' <<EOF
[mqtt]
host = "127.0.0.1"
port = 1883
username = "clinic"
password_file = "/run/credentials/$clinic/mqtt_password"
[clinic]
port = $clinic_port
EOF
inside sh -c "umask 077 && cat >/etc/credstore/treadctl-clinic.mqtt_password" <<<"$clinic_secret"
# What the service on SQLite never imports (psycopg's binary and libpq) is imported by a oneshot
# twin of the shipped unit: every line the same but Type=, NotifyAccess=, ExecStart=, Restart=.
sandbox_exec="/opt/treadctl/.venv/bin/python /opt/treadctl/systemd/runtime_probe.py sandbox-imports"
sed -e 's/^Type=notify$/Type=oneshot/' -e '/^NotifyAccess=/d' -e '/^Restart=/d' \
    -e "s|^ExecStart=.*|ExecStart=$sandbox_exec|" "$here/$clinic" \
    | inside sh -c 'cat >/run/systemd/system/rt-clinic-sandbox.service'
inside systemctl daemon-reload
clinic_start() {
    local t0 status=0
    t0=$(now_ms)
    timeout 90 nsenter -t "$leader" -a -- systemctl start "$clinic" || status=$?
    echo "$status $(($(now_ms) - t0))" >"$tmp/clinic-start"
}
clinic_start >"$tmp/clinic-start.log" 2>&1 &
clinic_starter=$!

unit_unchanged() {
    local files
    files=$(inside systemctl cat "$unit" | sed -n 's/^# \//\//p' | xargs)
    echo "systemctl cat: $files"
    cmp -s "$here/treadctl@.service" <(inside cat /etc/systemd/system/treadctl@.service) \
        && [ "$files" = /etc/systemd/system/treadctl@.service ]
}
check "unit installed unchanged, no drop-ins" unit_unchanged
clinic_unchanged() {
    local files
    files=$(inside systemctl cat "$clinic" | sed -n 's/^# \(\/[^ ]*\)$/\1/p' | xargs)
    echo "systemctl cat: $files"
    cmp -s "$here/$clinic" <(inside cat "/etc/systemd/system/$clinic") \
        && [ "$files" = "/etc/systemd/system/$clinic" ]
}
check "clinic: unit installed unchanged, no drop-ins" clinic_unchanged

# --- a port the service's user cannot open: refused, logged without locals or secrets --------
inside stat -c '%n %U:%G %a' "$pty" >"$tmp/pty-before"
if inside timeout 30 systemctl start "$unit" 2>/dev/null; then
    fail "port at the pty's own root:tty 0620: the start succeeded (the dynamic user should be refused)"
elif wait_for 10 in_journal "$unit" '"level": "error".*LinkLost.*Permission denied'; then
    pass "port at $(cat "$tmp/pty-before"): start refused, LinkLost Permission denied ($(show Result))"
else
    fail "port at $(cat "$tmp/pty-before"): start failed, but not with LinkLost Permission denied"
fi
failed_open_line() {
    journal "$unit" | inside python3 /opt/treadctl/systemd/runtime_probe.py failed-open "$link"
}
check "that failed-open error line: no locals" failed_open_line

# --- READY, Status= --------------------------------------------------------------------------
inside chgrp dialout "$pty"
inside chmod 0660 "$pty"
t0=$(now_ms)
if inside timeout 30 systemctl restart "$unit"; then
    t1=$(now_ms)
    status_line=$(inside systemctl status --no-pager --lines=0 "$unit" | sed -n 's/^ *Status: //p')
    if [ "$(show ActiveState)/$(show SubState)" = active/running ] && [ -n "$status_line" ]; then
        pass "READY: start returned after $((t1 - t0)) ms, active/running, Status: $status_line"
    else
        fail "READY: $(show ActiveState)/$(show SubState), Status: '$status_line'"
    fi
else
    die "start with the port at root:dialout 0660 failed"
fi
watchdog_at=$(show WatchdogTimestampMonotonic)
pid=$(show MainPID)

# --- the port, opened by the dynamic user with the dialout group ----------------------------
port_opened() {
    local uid user groups fds caps
    uid=$(inside awk '/^Uid:/ {print $2}' "/proc/$pid/status")
    user=$(inside id -nu "$uid")
    groups=$(inside awk '/^Groups:/ {$1=""; print}' "/proc/$pid/status" | xargs)
    fds=$(inside find "/proc/$pid/fd" -lname "$pty" | wc -l)
    caps=$(inside awk '/^(CapEff|NoNewPrivs|Seccomp):/ {printf "%s %s ", $1, $2}' "/proc/$pid/status")
    echo "$(inside stat -c '%n %U:%G %a' "$pty") open ${fds}x by pid $pid, uid $uid ($user), groups $groups; $caps"
    [ "$fds" -ge 1 ] && [ "$user" = "treadctl-$instance" ] && [ "$uid" -ge 61184 ] \
        && [ "$uid" -le 65519 ] && [[ " $groups " = *" 20 "* ]] \
        && [[ "$caps" = *"CapEff: 0000000000000000 NoNewPrivs: 1 Seccomp: 2"* ]]
}
check "port opened by the dynamic user" port_opened

# --- MQTT: the daemon authenticated with the credential and publishes state ------------------
sub() { inside mosquitto_sub -h 127.0.0.1 -u rtcheck -P "$checker_pw" "$@"; }
show_uid() { inside awk '/^Uid:/ {print $2}' "/proc/$pid/status"; }
mqtt_state() {
    local availability state cred anonymous
    availability=$(sub -t "treadctl/$instance/availability" -C 1 -W 10)
    state=$(sub -t "treadctl/$instance/state" -C 1 -W 10)
    cred=$(inside stat -c '%a %u' "/run/credentials/$unit/mqtt_password")
    anonymous=$(inside mosquitto_sub -h 127.0.0.1 -t '#' -C 1 -W 3 2>&1 | head -n 1)
    echo "availability '$availability', state ${state:0:60}...; credential mode $cred (owner);" \
        "anonymous client: $anonymous"
    [ "$availability" = online ] && [[ "$state" = "{"* ]] && [ "$cred" = "400 $(show_uid)" ] \
        && [[ "$anonymous" = *"not authori"* ]]
}
check "state on MQTT (password from LoadCredential=)" mqtt_state

# --- the database under the StateDirectory ---------------------------------------------------
database() {
    local db=/var/lib/private/treadctl/$instance/sessions.db
    echo "$(inside stat -c '%n %u %a' "$db") in $(inside stat -c '%n %u %a' "$(dirname "$db")"),"\
        "/var/lib/treadctl/$instance -> $(inside readlink "/var/lib/treadctl/$instance")"
    [ "$(inside stat -c '%u' "$db")" = "$(show_uid)" ] \
        && [ "$(inside stat -c '%a' "$(dirname "$db")")" = 700 ] \
        && [ "$(inside head -c 15 "$db")" = "SQLite format 3" ]
}
check "database in the StateDirectory" database

# --- DevicePolicy=closed enforced on the service's cgroup ------------------------------------
inside test -c /dev/fuse || inside mknod -m 0666 /dev/fuse c 10 229
devices() {
    local cgroup
    cgroup=/sys/fs/cgroup$(show ControlGroup)
    printf '%s ' "DevicePolicy=$(show DevicePolicy), DeviceAllow=$(show DeviceAllow | paste -sd,);"
    inside python3 /opt/treadctl/systemd/runtime_probe.py devices "$cgroup" \
        --allowed /dev/null "$pty" --denied /dev/fuse
}
check "DevicePolicy enforced" devices

# --- reload ----------------------------------------------------------------------------------
reload() {
    inside systemctl reload "$unit"
    wait_for 10 in_journal "$unit" '"event": "configuration reloaded"' || return 1
    echo "'configuration reloaded' logged; pid $(show MainPID), $(show ActiveState)"
    [ "$(show MainPID)" = "$pid" ] && [ "$(show ActiveState)" = active ]
}
check "systemctl reload" reload

# --- the clinic service: READY, web API, database; a session for the person ------------------
# (started in the background above; the daemon has been running for a few seconds)
cshow() { inside systemctl show -p "$1" --value "$clinic"; }
wait "$clinic_starter" || true
clinic_pid=$(cshow MainPID)
clinic_ready() {
    local status ms started ready
    read -r status ms <"$tmp/clinic-start" || { echo "systemctl start did not end"; return 1; }
    started=$(cshow ExecMainStartTimestampMonotonic)
    ready=$(cshow ActiveEnterTimestampMonotonic)
    echo "systemctl start returned $status after $ms ms (READY=1 $(((ready - started) / 1000)) ms" \
        "after exec; TimeoutStartSec $(cshow TimeoutStartUSec))," \
        "$(cshow ActiveState)/$(cshow SubState), Status: $(cshow StatusText)," \
        "pid $clinic_pid $(inside id -nu "$(inside stat -c %u "/proc/$clinic_pid")")" \
        "$(inside awk '/^(CapEff|NoNewPrivs|Seccomp):/ {printf "%s %s ", $1, $2}' \
            "/proc/$clinic_pid/status")"
    [ "$status" = 0 ] && [ "$(cshow ActiveState)/$(cshow SubState)" = active/running ] \
        && in_journal "$clinic" '"event": "clinic service ready"'
}
check "clinic: systemctl start -> READY" clinic_ready
csub() { inside mosquitto_sub -h 127.0.0.1 -u rtcheck -P "$checker_pw" "$@"; }
probe_connected() { probe http GET "$api/health" | grep -q '"broker":"connected"'; }
clinic_health() {
    local answer availability
    wait_for 15 probe_connected
    answer=$(probe http GET "$api/health")
    availability=$(csub -t treadctl/clinic/availability -C 1 -W 5)
    echo "$answer; retained availability '$availability'"
    [[ "$answer" = *'"broker":"connected"'* ]] && [ "$availability" = online ]
}
check "clinic: GET /api/health, on the broker (its credential)" clinic_health
# The first admin, as docs/dashboard.md says: `treadctl users add` as the service's own
# (dynamic) user, on its database in its StateDirectory; then the API with that login.
clinic_admin() {
    local made
    made=$(inside systemd-run --wait --pipe --quiet --collect -p DynamicUser=yes \
        -p User=treadctl-clinic -p StateDirectory=treadctl/clinic -p StateDirectoryMode=0700 \
        /opt/treadctl/.venv/bin/treadctl users add rtadmin --admin --password-stdin \
        --config /etc/treadctl/clinic.toml <<<"$checker_pw" 2>&1 | grep -v '"event"')
    echo "$made; $(probe http GET "$api/people" | cut -c1-40) before logging in;" \
        "$(probe login "$api/login" rtadmin "$checker_pw")"
    [ "$made" = "added rtadmin (admin)" ] && probe http GET "$api/people" >/dev/null
}
check "clinic: treadctl users add (as the service's user), then log in" clinic_admin
person_body="{\"id\": \"$person\", \"limits\": {\"max_speed_backward_kmh\": 1.0},"
person_body+=" \"parameters\": {\"comfortable_backward_kmh\": 0.8}}"
check "clinic: POST /api/people" probe http POST "$api/people" "$person_body"
clinic_database() {
    local dir=/var/lib/private/treadctl/clinic uid files revision
    uid=$(inside stat -c %u "/proc/$clinic_pid")
    files=$(inside find "$dir" -mindepth 1 -printf '%f %U %m, ' | sed 's/, $//')
    revision=$(probe sqlite "$dir/clinic.db" 'SELECT version_num FROM alembic_version')
    echo "$(inside stat -c '%n %U %a' "$dir"): $files; Alembic revision $revision;" \
        "/var/lib/treadctl/clinic -> $(inside readlink /var/lib/treadctl/clinic)"
    [ "$(inside stat -c '%u %a' "$dir")" = "$uid 700" ] \
        && [ "$(inside stat -c '%u %a' "$dir/clinic.db")" = "$uid 600" ] \
        && [ "$(inside find "$dir" -mindepth 1 ! -perm 0600 | wc -l)" = 0 ] && [ -n "$revision" ]
}
check "clinic: database in its StateDirectory" clinic_database

# The session, started through the clinic's web API, reaches the clinic and is acknowledged.
running_for_person() {
    sub -t "treadctl/$instance/state" -C 1 -W 3 >"$tmp/state" 2>&1 \
        && grep -q '"mode": "running"' "$tmp/state" \
        && grep -q "\"person\": \"$person\"" "$tmp/state"
}
acknowledged() {
    inside /opt/treadctl/.venv/bin/treadctl sessions show "$1" \
        --db "/var/lib/private/treadctl/$instance/sessions.db" | grep '^clinic  *acknowledged'
}
start_for_person() {
    probe http POST "$api/treadmills/$instance/start" \
        "{\"person\": \"$person\", \"program\": \"alghadir2019-knee-oa\"}" >"$tmp/start"
}
daemon_session() {
    local answer sid t0 stored acked
    # The daemon refuses starts for its interlock time after it starts (safety rule 7, 3 s):
    # retried until accepted, within 15 s (a refused start moves nothing).
    wait_for 15 start_for_person || true
    answer=$(cat "$tmp/start")
    [[ "$answer" = "HTTP 200 "* ]] || { echo "start: $answer"; return 1; }
    wait_for 15 running_for_person \
        || { echo "start: $answer; not running: $(cat "$tmp/state")"; return 1; }
    sid=$(sed -n 's/.*"session_id": "\([^"]*\)".*/\1/p' "$tmp/state")
    inside mosquitto_pub -h 127.0.0.1 -u rtcheck -P "$checker_pw" -q 1 \
        -t "treadctl/$instance/cmd/stop" -m '{"id": "rt-stop"}'
    t0=$(now_ms)
    wait_for 30 probe http GET "$api/sessions/$sid" \
        || { echo "session $sid never reached the clinic"; return 1; }
    stored=$(($(now_ms) - t0))
    wait_for 15 acknowledged "$sid" \
        || { echo "session $sid stored, never acknowledged"; return 1; }
    acked=$(acknowledged "$sid" | xargs)
    probe http GET "$api/sessions/$sid" --save /run/rt-session.json >/dev/null
    echo "session $sid for $person started by POST $api/treadmills/$instance/start, stopped" \
        "by cmd/stop; in the clinic $stored ms later ($(inside grep -o \
        '"device_id":"[^"]*"\|"ended_how":"[a-z]*"' /run/rt-session.json | xargs));" \
        "daemon's store: $acked"
}
check "clinic: the daemon's session reaches the clinic and is acked" daemon_session

# --- SIGKILL: restarted ----------------------------------------------------------------------
running_again() { [ "$(show NRestarts)" -gt "$1" ] && [ "$(show SubState)" = running ]; }
restarted_after() {   # WHAT RESULT SECONDS: the unit failed with RESULT and is running again
    local what=$1 result=$2 t0=$SECONDS new
    wait_for "$3" running_again "$restarts" || { echo "not running again within $3 s"; return 1; }
    # journald may store systemd's own line a moment after the unit runs again: wait for it.
    wait_for 10 in_journal "$unit" "Failed with result '$result'" \
        || { echo "no \"Failed with result '$result'\" in the journal"; return 1; }
    new=$(show MainPID)
    echo "$what: failed with result '$result', running again as pid $new (was $pid)" \
        "$((SECONDS - t0 + ${4:-0})) s later"
    [ "$new" != "$pid" ]
}
restarts=$(show NRestarts)
inside systemctl kill --kill-who=main --signal=SIGKILL "$unit"
killed_at=$SECONDS
# (the clinic's record and report checks run while the daemon waits out RestartSec=)
probe_record() {   # mosquitto_rr: subscribed to the ack topic before it publishes (-m: its -s
    local sid="rt-probe-$$" ack   # and -f publish an empty message in mosquitto 2.0.11)
    ack=$(inside mosquitto_rr -h 127.0.0.1 -u rtcheck -P "$checker_pw" -q 1 -W 20 \
        -t treadctl/rtprobe/record -e treadctl/rtprobe/record/ack \
        -m "$(probe record rtprobe "$sid" "$person")")
    echo "published on treadctl/rtprobe/record, ack '$ack';" \
        "GET /api/sessions/$sid: $(probe http GET "$api/sessions/$sid" | cut -c1-50)..."
    [ "$ack" = "{\"session\": \"$sid\"}" ] && probe http GET "$api/sessions/$sid" >/dev/null
}
check "clinic: a record published by a test client is stored and acked" probe_record
clinic_report() {
    local answer t0 charts cache
    t0=$(now_ms)
    answer=$(probe http GET "$api/people/$person/report" --save /run/rt-report.html) \
        || { echo "$answer"; return 1; }
    charts=$(inside grep -o 'data:image/png;base64,' /run/rt-report.html | wc -l)
    cache=$(inside find /var/cache/private/treadctl/clinic -name 'fontlist*' -printf '%p %U %m')
    echo "$answer in $(($(now_ms) - t0)) ms, $charts charts (PNG, matplotlib); font cache: $cache"
    [[ "$answer" = "HTTP 200 text/html"* ]] && [ "$charts" -ge 1 ] && [ -n "$cache" ]
}
check "clinic: GET /api/people/ID/report" clinic_report
check "clinic: compiled extensions loaded in the service under MemoryDenyWriteExecute=" \
    probe extensions "$clinic_pid" sqlalchemy numpy matplotlib pydantic_core
check "SIGKILL -> restart" restarted_after "SIGKILL" signal 30 $((SECONDS - killed_at))
pid=$(show MainPID)

# The watchdog timestamp advanced since READY (pings reach systemd).
if [ "$(show WatchdogTimestampMonotonic)" -gt "$watchdog_at" ]; then
    pass "watchdog pings: WatchdogTimestamp advanced"
else
    fail "watchdog pings: WatchdogTimestamp did not advance"
fi

# --- SIGSTOP: the watchdog fires, stacks in the journal, restarted ---------------------------
# (the clinic's sandbox and exposure checks, and its stop, run while the watchdog runs out)
restarts=$(show NRestarts)
inside kill -STOP "$pid"
stopped_at=$SECONDS
sandbox_imports() {
    local status=0
    inside systemctl start rt-clinic-sandbox.service || status=$?
    wait_for 10 in_journal rt-clinic-sandbox.service '^uid ' || true
    echo "$(journal rt-clinic-sandbox.service | grep '^uid ' | tail -n 1)" \
        "(exit $(inside systemctl show -p ExecMainStatus --value rt-clinic-sandbox.service))"
    [ "$status" = 0 ]
}
check "clinic: psycopg binary, libpq, SQLAlchemy's extensions under the unit's sandbox" \
    sandbox_imports
clinic_security() {
    local out exposure
    out=$(inside systemd-analyze security --no-pager "$clinic")
    exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' <<<"$out")
    echo "overall exposure $exposure (limit 2.5, as systemd/check.sh offline); adding to it:" \
        "$(grep -E ' [0-9]+\.[0-9]+$' <<<"$out" | awk '{print $2 " " $NF}' | paste -sd ';' | sed 's/;/; /g')"
    [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN { exit !(e <= 2.5) }'
}
check "clinic: systemd-analyze security (running)" clinic_security
clinic_stopped() {
    local t0 ms availability
    t0=$(now_ms)
    inside systemctl stop "$clinic"
    ms=$(($(now_ms) - t0))
    availability=$(csub -t treadctl/clinic/availability -C 1 -W 5)
    echo "stopped in $ms ms, Result $(cshow Result), exit status $(cshow ExecMainStatus)," \
        "retained availability '$availability'"
    [ "$(cshow Result)" = success ] && [ "$(cshow ActiveState)" = inactive ] \
        && [ "$(cshow ExecMainStatus)" = 0 ] && [ "$availability" = offline ]
}
check "clinic: systemctl stop -> retained offline, Result success" clinic_stopped
watchdog() {
    local restart j frames
    restart=$(restarted_after "SIGSTOP" watchdog 40 $((SECONDS - stopped_at))) \
        || { echo "$restart"; return 1; }
    j=$(journal "$unit")
    grep -q "Watchdog timeout" <<<"$j" || { echo "no 'Watchdog timeout'"; return 1; }
    grep -q "Killing process .* with signal SIGABRT" <<<"$j" || { echo "no SIGABRT"; return 1; }
    grep -q "Fatal Python error: Aborted" <<<"$j" || { echo "no faulthandler dump"; return 1; }
    frames=$(grep -cE '^ +File "' <<<"$j" || true)
    echo "$restart; journal: SIGABRT, $(grep -c "most recent call first" <<<"$j") thread" \
        "stacks, $frames frames"
    [ "$frames" -ge 1 ]
}
check "SIGSTOP -> watchdog -> restart, stacks in the journal" watchdog
pid=$(show MainPID)

# --- stop: offline published, result success -------------------------------------------------
sub -t "treadctl/$instance/availability" -C 2 -W 60 >"$tmp/availability" 2>&1 &
subscriber=$!
wait_for 10 grep -q online "$tmp/availability" || true
t0=$(now_ms)
inside systemctl stop "$unit"
stop_ms=$(($(now_ms) - t0))
wait "$subscriber" || true
stopped() {
    local seen
    seen=$(xargs <"$tmp/availability")
    echo "stopped in $stop_ms ms, Result $(show Result), exit status $(show ExecMainStatus)," \
        "availability seen: $seen"
    [ "$(show Result)" = success ] && [ "$(show ActiveState)" = inactive ] \
        && [ "$seen" = "online offline" ]
}
check "systemctl stop -> offline published, Result success" stopped

# --- the journal: no EPERM, no seccomp denial, no secret -------------------------------------
journal_clean() {
    local j hits audits
    j=$(journal "$unit")
    hits=$(grep -ciE 'EPERM|Operation not permitted|Errno 1\]|seccomp|SIGSYS|Bad system call' \
        <<<"$j" || true)
    audits=$(($(dmesg 2>/dev/null | grep -c 'type=1326' || true) - audits_before))
    echo "$(wc -l <<<"$j") lines from the unit, $hits mentioning EPERM or seccomp;" \
        "$audits new seccomp audit records in the host's kernel log"
    [ "$hits" = 0 ] && [ "$audits" -le 0 ]
}
check "journal: no EPERM or seccomp denial" journal_clean
clinic_journal_clean() {
    local j hits
    j=$(journal "$clinic"; journal rt-clinic-sandbox.service)
    hits=$(grep -ciE -e 'EPERM|Operation not permitted|Errno 1\]|seccomp|SIGSYS|Bad system call' \
        -e 'Traceback|"level": "(warning|error)"' <<<"$j" || true)
    echo "$(wc -l <<<"$j") lines from the clinic's units, $hits mentioning EPERM, seccomp," \
        "a traceback, a warning or an error"
    [ "$hits" = 0 ]
}
check "clinic: journal: no EPERM, seccomp denial, warning or error" clinic_journal_clean
# A canary logged by another unit shows that the search sees every unit's entries.
canary="rt-canary-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
inside systemd-run --quiet --wait --unit=rt-canary echo "$canary"
secret_absent() {
    local all count
    all=$(inside journalctl --no-pager -q -o export)
    count=$(grep -cF -e "$secret" -e "$clinic_secret" <<<"$all" || true)
    echo "$(grep -c '^MESSAGE=' <<<"$all") journal entries (all fields, all units)," \
        "$count with a password, $(grep -cF -- "$canary" <<<"$all" || true) with the canary"
    [ "$count" = 0 ] && grep -qF -- "$canary" <<<"$all" && grep -q 'LinkLost' <<<"$all" \
        && grep -q 'treadctl running' <<<"$all"
}
check "secret never in the journal" secret_absent
sim_quiet() {
    local j
    j=$(journal rt-treadsim.service)
    echo "$(grep -c '^belt: ' <<<"$j") belt reports," \
        "$(grep -cE '"level": "error"|Traceback|Exception' <<<"$j" || true) errors"
    grep -q "simulated woodway treadmill on" <<<"$j" \
        && ! grep -qE '"level": "error"|Traceback|Exception' <<<"$j"
}
check "treadctl sim with stdin on /dev/null: no error logged" sim_quiet

if [ "$fails" != 0 ]; then
    echo "--- journal of $unit (last 60 lines)"
    inside journalctl --no-pager -q -u "$unit" | tail -n 60 || true
    echo "--- journal of $clinic (last 40 lines)"
    inside journalctl --no-pager -q -u "$clinic" | tail -n 40 || true
fi
if [ -n "${TREADCTL_RUNTIME_JOURNAL:-}" ]; then   # keep the container's whole journal
    inside journalctl --no-pager -q -o short-precise >"$TREADCTL_RUNTIME_JOURNAL" || true
fi

# --- power off, clean up, and check the host --------------------------------------------------
t0=$SECONDS
teardown
leader=""
host_clean() {
    local left=""
    grep -q "$tmp" /proc/self/mountinfo && left+=" mounts"
    for cg in "${cgroup_roots[@]}"; do [ -e "$cg/$name" ] && left+=" $cg/$name"; done
    grep -lsq "$name" /proc/[0-9]*/cgroup && left+=" processes"
    [ -e "$tmp" ] && left+=" $tmp"
    echo "container powered off (nspawn exit status $container_exit), cleaned up in" \
        "$((SECONDS - t0)) s${left:+; left behind:$left}"
    [ -z "$left" ] && [ "$container_exit" = 0 ]
}
check "nothing left on the host" host_clean

echo "runtime check: $fails failed, $((SECONDS - started)) s"
[ "$fails" = 0 ] || exit 1
