"""Where an e-stop waited: the packet capture of `bench/estop_mqtt.py --capture` read back.

Run: uv run python bench/estop_capture.py PCAP RESULT_JSON [--json PATH]

For each trial of the result, in the capture (loopback, the broker's port): the e-stop PUBLISH
arriving from the measuring client (`in`), the broker sending it on to the daemon (`out`), and
the stop byte (from the result). `held` = out − in: time the broker kept it. Whether the broker
still had data to the daemon unacknowledged when the e-stop came in (the condition under which
Nagle's algorithm holds a small segment back), what that data was, and the daemon's TCP ACK that
released it (`out` within 1 ms after it): so a trial held by Nagle shows as `unacked` and
`released_by_ack`. `daemon` = stop byte − out: the daemon's own time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
RELEASE_S = 0.001
HELD_S = 0.005  # a trial counts as held from here
MQTT_TYPES = {1: "CONNECT", 3: "PUBLISH", 4: "PUBACK", 8: "SUBSCRIBE", 9: "SUBACK", 12: "PINGREQ"}


@dataclass(frozen=True, slots=True)
class Segment:
    ts: float
    src: int  # ports: everything is on loopback
    dst: int
    seq: int
    ack: int
    flags: int
    length: int  # TCP payload length (before the capture's truncation)
    data: bytes  # what the capture kept of it

    @property
    def end(self) -> int:
        return (self.seq + self.length) & 0xFFFFFFFF


def read_pcap(path: Path) -> list[Segment]:
    raw = path.read_bytes()
    magic = raw[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", raw[20:24])[0]
    link_len = {LINKTYPE_ETHERNET: 14, LINKTYPE_LINUX_SLL: 16}[linktype]
    out: list[Segment] = []
    pos = 24
    while pos + 16 <= len(raw):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", raw[pos : pos + 16])
        frame = raw[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        ip = frame[link_len:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 0xF) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:]
        src, dst, seq, ack = struct.unpack("!HHII", tcp[:12])
        off = (tcp[12] >> 4) * 4
        ts = sec + frac / (1e9 if nano else 1e6)
        out.append(Segment(ts, src, dst, seq, ack, tcp[13], total - ihl - off, tcp[off:]))
    return out


def broker_port(segments: list[Segment]) -> int:
    counts: dict[int, int] = {}
    for s in segments:
        for p in (s.src, s.dst):
            counts[p] = counts.get(p, 0) + 1
    return max(counts, key=lambda p: counts[p])


def packet_kinds(data: bytes) -> str:
    """The MQTT packets that start in `data` (as far as the capture kept it)."""
    kinds, pos = [], 0
    while pos < len(data):
        kind = MQTT_TYPES.get(data[pos] >> 4, str(data[pos] >> 4))
        length, mult, pos = 0, 1, pos + 1
        while pos < len(data):
            byte = data[pos]
            length += (byte & 0x7F) * mult
            mult *= 128
            pos += 1
            if not byte & 0x80:
                break
        kinds.append(kind)
        pos += length
    return "+".join(kinds)


def analyse(segments: list[Segment], trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    broker = broker_port(segments)
    rows = []
    for trial in trials:
        topic = f"treadctl/{trial['device']}/cmd/estop".encode()
        t0 = trial["publish_wall"] - 0.002
        # the measuring client's PUBLISH, then the broker's copy to the daemon (the only
        # subscriber of that topic); the ports follow from them
        inbound = next(
            (s for s in segments if s.ts >= t0 and s.dst == broker and topic in s.data), None
        )
        if inbound is None:
            continue
        outbound = next(
            (s for s in segments if s.ts >= inbound.ts and s.src == broker and topic in s.data),
            None,
        )
        if outbound is None:
            continue
        daemon = outbound.dst
        to_daemon = [s for s in segments if s.src == broker and s.dst == daemon]
        acks = [s for s in segments if s.src == daemon and s.dst == broker and s.flags & 0x10]
        sent = [s for s in to_daemon if s.ts <= inbound.ts and s.length]
        acked = max((s.ack for s in acks if s.ts <= inbound.ts), default=0)
        last = sent[-1] if sent else None
        unacked = last is not None and (last.end - acked) & 0x80000000 == 0 and last.end != acked
        release = None
        if unacked and last is not None:
            release = next(
                (s for s in acks if s.ts >= inbound.ts and (s.ack - last.end) & 0x80000000 == 0),
                None,
            )
        released = release is not None and 0 <= outbound.ts - release.ts <= RELEASE_S
        held = outbound.ts - inbound.ts
        rows.append(
            {
                "device": trial["device"],
                "treadctl_ms": trial["treadctl_s"] * 1e3,
                "held_ms": held * 1e3,
                "daemon_ms": (trial["publish_wall"] + trial["treadctl_s"] - outbound.ts) * 1e3,
                "client_to_broker_ms": (inbound.ts - trial["publish_wall"]) * 1e3,
                "unacked": unacked,
                "unacked_was": packet_kinds(last.data) if unacked and last else "",
                "unacked_age_ms": (inbound.ts - last.ts) * 1e3 if unacked and last else None,
                "released_by_ack": released,
                "release_carried_data": bool(release and release.length) if released else None,
                "estop_segment": packet_kinds(outbound.data),
                "record_in_flight": trial.get("record_in_flight"),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pcap", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = json.loads(args.result.read_text())
    rows = analyse(read_pcap(args.pcap), result["trials"])
    held = [r for r in rows if r["held_ms"] >= HELD_S * 1e3]
    by_nagle = [r for r in held if r["unacked"] and r["released_by_ack"]]
    summary = {
        "trials_found": len(rows),
        "trials": len(result["trials"]),
        "held_ge_5ms": len(held),
        "held_with_unacked_data_released_by_the_daemons_ack": len(by_nagle),
        "held_p50_ms": round(statistics.median(r["held_ms"] for r in rows), 3) if rows else None,
        "daemon_p50_ms": round(statistics.median(r["daemon_ms"] for r in rows), 3)
        if rows
        else None,
        "daemon_max_ms": round(max(r["daemon_ms"] for r in rows), 3) if rows else None,
        "held_max_ms": round(max(r["held_ms"] for r in rows), 3) if rows else None,
        "unacked_at_arrival": sum(r["unacked"] for r in rows),
        "held_unacked_kinds": sorted({r["unacked_was"] for r in held}),
    }
    for r in sorted(rows, key=lambda r: -r["held_ms"])[:15]:
        print(
            f"{r['device']:7} e-stop {r['treadctl_ms']:7.2f} ms  held by broker "
            f"{r['held_ms']:7.2f} ms  daemon {r['daemon_ms']:6.2f} ms  "
            f"unacked {r['unacked_was'] or '-':20} "
            f"age {r['unacked_age_ms'] or 0:6.2f} ms  released by daemon's ACK "
            f"{r['released_by_ack']}  records {r['record_in_flight']}"
        )
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
