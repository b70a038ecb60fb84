#!/usr/bin/env bash
# shellcheck disable=SC2016  # awk programs in single quotes are run inside the container
# Runs treadctl@.service, unchanged, under a real systemd and checks what it does there.
#
# Boots the host's own systemd in a container (systemd-nspawn over an overlay of the host's root,
# changes kept in memory, mounts in a private mount namespace), then inside it: a mosquitto that
# needs a password, `treadctl sim --driver woodway` on a pty made to look like a ttyUSB node
# (root:dialout 0660), the unit installed as shipped, the password as a systemd credential.
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
    # the system's python3, bytecode compiled as docs/systemd.md says).
    mkdir -p "$root/opt/treadctl"
    (cd "$repo" && tar -cf - --exclude=__pycache__ pyproject.toml uv.lock README.md treadctl \
        systemd) | tar -xf - -C "$root/opt/treadctl"
    mount --bind /proc "$root/proc"
    mount --bind /dev "$root/dev"
    chroot "$root" env UV_LINK_MODE=copy UV_NO_PROGRESS=1 "$uv_bin" sync --quiet \
        --project /opt/treadctl --locked --no-dev --compile-bytecode --python /usr/bin/python3
    chroot "$root" /opt/treadctl/.venv/bin/python -m compileall -q /opt/treadctl/treadctl
    umount "$root/proc" "$root/dev"

    # The unit exactly as shipped. A minimal boot target: basic.target and nothing of the host's
    # multi-user.target (databases, getty, cron...), timers masked (apt-daily would run).
    install -m 0644 "$here/treadctl@.service" "$root/etc/systemd/system/treadctl@.service"
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
inside systemctl daemon-reload

unit_unchanged() {
    local files
    files=$(inside systemctl cat "$unit" | sed -n 's/^# \//\//p' | xargs)
    echo "systemctl cat: $files"
    cmp -s "$here/treadctl@.service" <(inside cat /etc/systemd/system/treadctl@.service) \
        && [ "$files" = /etc/systemd/system/treadctl@.service ]
}
check "unit installed unchanged, no drop-ins" unit_unchanged

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
check "SIGKILL -> restart" restarted_after "SIGKILL" signal 30
pid=$(show MainPID)

# The watchdog timestamp advanced since READY (pings reach systemd).
if [ "$(show WatchdogTimestampMonotonic)" -gt "$watchdog_at" ]; then
    pass "watchdog pings: WatchdogTimestamp advanced"
else
    fail "watchdog pings: WatchdogTimestamp did not advance"
fi

# --- SIGSTOP: the watchdog fires, stacks in the journal, restarted ---------------------------
restarts=$(show NRestarts)
inside kill -STOP "$pid"
watchdog() {
    local restart j frames
    restart=$(restarted_after "SIGSTOP" watchdog 40) || { echo "$restart"; return 1; }
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
# A canary logged by another unit shows that the search sees every unit's entries.
canary="rt-canary-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
inside systemd-run --quiet --wait --unit=rt-canary echo "$canary"
secret_absent() {
    local all count
    all=$(inside journalctl --no-pager -q -o export)
    count=$(grep -cF -- "$secret" <<<"$all" || true)
    echo "$(grep -c '^MESSAGE=' <<<"$all") journal entries (all fields, all units)," \
        "$count with the password, $(grep -cF -- "$canary" <<<"$all" || true) with the canary"
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
