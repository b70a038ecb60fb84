"""The e-stop baseline: the least a bridge can do, paho-mqtt subscribing, pyserial writing the
stop byte. Run by bench/estop_mqtt.py and bench/fleet.py as
    python bench/baseline_bridge.py HOST PORT TOPIC SERIAL_PORT [SUBSCRIPTION]

With SUBSCRIPTION (a filter such as `bench/baseline/cmd/+`), it receives a bridge's whole
command set, as treadctl does, and writes the stop byte only for TOPIC: under a command flood
it reads every message the daemon reads, and does the least with each.
"""

from __future__ import annotations

import sys

import paho.mqtt.client as mqtt
import serial
from paho.mqtt.enums import CallbackAPIVersion

host, port, topic, device = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
subscription = sys.argv[5] if len(sys.argv) > 5 else topic
line = serial.Serial(device, 4800)
client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
client.on_connect = lambda c, *_: c.subscribe(subscription, qos=1)


def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
    if message.topic == topic:
        line.write(b"\xa2")


client.on_message = on_message
client.connect(host, port)
client.loop_forever()
