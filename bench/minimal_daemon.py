"""The CPU baseline: the least a daemon can do for the same work as treadctl's at a steady belt.
pyserial polls the Woodway every 100 ms with treadctl's requests (C0 and C1 at every poll, C2
once a second, as treadctl reads a still elevation: the same bytes, the same answers read);
paho-mqtt publishes the retained state (QoS 1) when the reading changes and the telemetry (QoS
0, the contract's fields) at RATE_HZ. It starts the belt once as treadctl's driver does (A3
speed, A0 start with the watchdog), at 1.0 km/h backward. Run by bench/resources.py as
    python bench/minimal_daemon.py HOST PORT DEVICE SERIAL_PORT RATE_HZ
"""

from __future__ import annotations

import json
import sys
import time

import paho.mqtt.client as mqtt
import serial
from paho.mqtt.enums import CallbackAPIVersion

host, port, device, path, rate = sys.argv[1], int(sys.argv[2]), *sys.argv[3:5], float(sys.argv[5])
line = serial.Serial(path, 4800, timeout=1.0)
client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
client.connect(host, port)
client.loop_start()
topic = f"minimal/{device}"


def ask(request: bytes, size: int) -> bytes:
    line.write(request)
    return line.read(size)


ask(b"\xa33006", 1)  # 0.6 mph reverse (1.0 km/h), then start with the watchdog armed
ask(b"\xa0", 1)
state, distance_m, t0 = b"", 0.0, time.monotonic()
next_poll = next_telemetry = last = t0
speed_kmh, belt, incline_pct = 0.0, "forward", 0.0
polls, elevation = 0, b""
while True:
    now = time.monotonic()
    if now >= next_poll:
        next_poll += 0.1
        reading = ask(b"\xc0", 2) + ask(b"\xc1", 5)
        if polls % 10 == 0:
            elevation = ask(b"\xc2", 5)
        polls += 1
        reading += elevation
        speed_kmh = int(reading[4:7]) / 10 * 1.609344
        belt = "reverse" if reading[3:4] == b"3" else "forward"
        incline_pct = int(reading[8:12]) / 10
        distance_m += speed_kmh / 3.6 * (now - last)
        last = now
        if reading != state:
            state = reading
            actual = {"speed_kmh": round(speed_kmh, 3), "belt": belt, "incline_pct": incline_pct}
            body = {"mode": "running", "actual": actual, "running": reading[1:2] != b"0"}
            client.publish(f"{topic}/state", json.dumps(body), qos=1, retain=True)
    if now >= next_telemetry:
        next_telemetry += 1 / rate
        sample = {
            "ts": round(time.time(), 3),
            "speed_kmh": round(speed_kmh, 3),
            "belt": belt,
            "incline_pct": incline_pct,
            "distance_m": round(distance_m, 2),
            "elapsed_s": round(now - t0, 2),
            "phase_index": 0,
            "phase_remaining_s": None,
            "heart_rate_bpm": None,
        }
        client.publish(f"{topic}/telemetry", json.dumps(sample), qos=0)
    time.sleep(max(0.0, min(next_poll, next_telemetry) - time.monotonic()))
