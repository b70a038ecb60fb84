#!/usr/bin/env bash
# Checks the systemd files in this directory without installing or starting anything:
#   1. `systemd-analyze verify` of treadctl@.service prints nothing at all (no warning, no error);
#   2. `systemd-analyze security --offline=yes` of an instance gives an overall exposure ≤ 2.5;
#      both checks again for treadctl-clinic.service (the clinic service);
#   3. `udevadm verify` of 99-treadmill.rules, where udevadm has that verb (systemd ≥ 253);
#      skipped with a message otherwise (Debian 12 ships systemd 252).
# Needs no running systemd (works in a container) and writes only to a temporary directory.
# Usage: bash systemd/check.sh        (CI: .ci/run installs the systemd package if needed)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
unit=treadctl@.service
instance=treadctl@check.service
max_exposure=2.5

if ! command -v systemd-analyze >/dev/null; then
    echo "check.sh: systemd-analyze not found; install the systemd package" >&2
    exit 1
fi
systemd-analyze --version | head -n 1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export SYSTEMD_COLORS=0 SYSTEMD_PAGER=cat

# `verify` insists that every Exec*= binary exists, and /opt/treadctl/.venv/bin/treadctl exists
# only where treadctl is installed. So the unit is copied unchanged, and a drop-in next to it
# (systemd-analyze adds the unit's directory to the search path, drop-ins included) replaces
# only ExecStart= with a stand-in script taking the same arguments. Every other line checked is
# the shipped file. Drop-ins installed on this machine for treadctl@.service would be merged too,
# as systemd would do.
cp "$here/$unit" "$tmp/$unit"
printf '#!/bin/sh\n# stand-in for treadctl (systemd/check.sh)\nexit 0\n' >"$tmp/treadctl"
chmod 0755 "$tmp/treadctl"
mkdir "$tmp/$unit.d"
cat >"$tmp/$unit.d/check-standin.conf" <<EOF
[Service]
ExecStart=
ExecStart=$tmp/treadctl run --config /etc/treadctl/%i.toml
EOF
grep -q '^ExecStart=/opt/treadctl/.venv/bin/treadctl run --config /etc/treadctl/%i.toml$' \
    "$tmp/$unit" || {
    echo "check.sh: ExecStart= in $unit changed; update the stand-in drop-in here" >&2
    exit 1
}

echo "== systemd-analyze verify $unit"
status=0
verify_out=$(cd "$tmp" && systemd-analyze verify "./$unit" 2>&1) || status=$?
if [ "$status" -ne 0 ] || [ -n "$verify_out" ]; then
    printf '%s\n' "$verify_out" >&2
    echo "check.sh: systemd-analyze verify is not clean (exit status $status)" >&2
    exit 1
fi
echo "clean (no output)"

echo "== systemd-analyze security --offline=yes $instance"
status=0
security_out=$(cd "$tmp" && systemd-analyze security --offline=yes "./$instance" 2>&1) || status=$?
exposure=$(printf '%s\n' "$security_out" \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p')
if [ "$status" -ne 0 ] || [ -z "$exposure" ]; then
    printf '%s\n' "$security_out" >&2
    echo "check.sh: systemd-analyze security failed (exit status $status)" >&2
    exit 1
fi
# The settings that still add to the figure (lines ending in their share of it).
printf '%s\n' "$security_out" | grep -E ' [0-9]+\.[0-9]+$' | sed -E 's/  +/  /g'
echo "overall exposure: $exposure (limit $max_exposure)"
if ! awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
    echo "check.sh: exposure $exposure is above $max_exposure" >&2
    exit 1
fi

# The clinic service's unit: the same two checks (it has no instances and no serial ports).
clinic=treadctl-clinic.service
cp "$here/$clinic" "$tmp/$clinic"
mkdir "$tmp/$clinic.d"
cat >"$tmp/$clinic.d/check-standin.conf" <<EOF2
[Service]
ExecStart=
ExecStart=$tmp/treadctl clinic --config /etc/treadctl/clinic.toml
EOF2
grep -q '^ExecStart=/opt/treadctl/.venv/bin/treadctl clinic --config /etc/treadctl/clinic.toml$' \
    "$tmp/$clinic" || {
    echo "check.sh: ExecStart= in $clinic changed; update the stand-in drop-in here" >&2
    exit 1
}
echo "== systemd-analyze verify $clinic"
status=0
verify_out=$(cd "$tmp" && systemd-analyze verify "./$clinic" 2>&1) || status=$?
if [ "$status" -ne 0 ] || [ -n "$verify_out" ]; then
    printf '%s\n' "$verify_out" >&2
    echo "check.sh: systemd-analyze verify of $clinic is not clean (exit status $status)" >&2
    exit 1
fi
echo "clean (no output)"
echo "== systemd-analyze security --offline=yes $clinic"
status=0
security_out=$(cd "$tmp" && systemd-analyze security --offline=yes "./$clinic" 2>&1) || status=$?
exposure=$(printf '%s\n' "$security_out" \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p')
if [ "$status" -ne 0 ] || [ -z "$exposure" ]; then
    printf '%s\n' "$security_out" >&2
    echo "check.sh: systemd-analyze security of $clinic failed (exit status $status)" >&2
    exit 1
fi
printf '%s\n' "$security_out" | grep -E ' [0-9]+\.[0-9]+$' | sed -E 's/  +/  /g'
echo "overall exposure: $exposure (limit $max_exposure)"
if ! awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
    echo "check.sh: exposure of $clinic $exposure is above $max_exposure" >&2
    exit 1
fi

echo "== udevadm verify 99-treadmill.rules"
if ! command -v udevadm >/dev/null; then
    echo "skipped: udevadm is not installed"
elif ! udevadm verify --help >/dev/null 2>&1; then
    echo "skipped: this udevadm ($(udevadm --version)) has no 'verify' (added in systemd 253)"
else
    udevadm verify "$here/99-treadmill.rules"
fi
echo "systemd files OK"
