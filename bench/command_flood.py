"""The MQTT command flood of tests/mqtt/test_resilience.py, kept up for a whole benchmark.

    python bench/command_flood.py HOST PORT RATE TOPIC_PREFIX...

Publishes the resilience test's junk commands (a bad speed, a start that is not JSON, an unknown
command, a speed out of range) at QoS 0 to `{prefix}/{name}` of every prefix in turn, RATE
messages a second in all, in bursts every BURST_S, until killed. Its own process, so that it
takes no time from the benchmark's clocks.
"""

from __future__ import annotations

import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

JUNK = [  # as tests/mqtt/test_resilience.py
    ("set", b'{"speed_kmh": "x"}'),
    ("start", b"not json"),
    ("bogus", b"{}"),
    ("set", b'{"speed_kmh": 99}'),
]
BURST_S = 0.02


def main() -> None:
    host, port, rate, prefixes = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(host, port)
    client.loop_start()
    per_burst = max(1, round(rate * BURST_S))
    sent = 0
    next_at = time.monotonic()
    while True:
        for _ in range(per_burst):
            prefix = prefixes[sent % len(prefixes)]
            name, payload = JUNK[(sent // len(prefixes)) % len(JUNK)]
            client.publish(f"{prefix}/{name}", payload, qos=0)
            sent += 1
        next_at += BURST_S
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()
