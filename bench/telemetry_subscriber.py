"""The update-lag baseline of bench/dashboard_fleet.py: a plain paho-mqtt subscriber to every
treadmill's telemetry, which notes when each message arrives. Run as
    python bench/telemetry_subscriber.py HOST PORT TOPIC OUTPUT
On SIGTERM it writes one line per message to OUTPUT: arrival (Unix s), the payload's `ts`, topic.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

host, port, topic, output = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
seen: list[tuple[float, bytes, str]] = []


def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
    seen.append((time.time(), bytes(message.payload), message.topic))  # parsed afterwards


def finish(*_: object) -> None:
    client.disconnect()


client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
client.on_connect = lambda c, *_: c.subscribe(topic, qos=0)
client.on_message = on_message
signal.signal(signal.SIGTERM, finish)
client.connect(host, port)
client.loop_forever()
lines = [f"{at:.6f} {json.loads(raw)['ts']} {name}\n" for at, raw, name in seen]
output.write_text("".join(lines))
