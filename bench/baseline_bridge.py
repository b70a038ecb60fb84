"""The e-stop baseline: the least a bridge can do, paho-mqtt subscribing, pyserial writing the
stop byte. Run by bench/estop_mqtt.py and bench/fleet.py as
    python bench/baseline_bridge.py HOST PORT TOPIC SERIAL_PORT
"""

from __future__ import annotations

import sys

import paho.mqtt.client as mqtt
import serial
from paho.mqtt.enums import CallbackAPIVersion

host, port, topic, device = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
line = serial.Serial(device, 4800)
client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)


def on_message(*_: object) -> None:
    line.write(b"\xa2")


client.on_message = on_message
client.connect(host, port)
client.loop_forever()
