"""How the daemon reads its broker socket: everything waiting at once, then the ACK at once.

aiomqtt puts a reader on paho's socket that parses one packet per wake-up of the event loop
(paho's `loop_read` reads as many as it has messages in flight, usually one). Under a flood of
commands the socket then holds a backlog, and an e-stop behind it waited a loop iteration per
message ahead of it. This reader hands paho everything the socket holds (bounded by
MAX_PACKETS), so an e-stop is acted on as soon as its bytes are parsed, before the commands
ahead of it are decoded (they wait in the queue, connection_loop.py).

After each wake-up it re-arms TCP_QUICKACK (Linux clears it): the kernel acknowledges what was
read at once instead of delaying the ACK up to 40 ms. A broker with Nagle's algorithm on
(mosquitto's default, `set_tcp_nodelay false`) holds a small packet to us, an e-stop, while an
earlier one (a PUBACK of our QoS 1 state or session record) is unacknowledged: measured in
docs/performance.md.
Our own socket sends without Nagle's delay (TCP_NODELAY, connection.py).
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import socket
import termios

import aiomqtt
import paho.mqtt.client as paho
import structlog

log = structlog.get_logger(__name__)

MAX_PACKETS = 256  # per wake-up: the loop's other work waits at most this long
QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def waiting_bytes(sock: socket.socket) -> int:
    """Bytes readable without blocking: the kernel's count, plus TLS's decrypted buffer."""
    count = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    pending = getattr(sock, "pending", None)  # ssl.SSLSocket
    return count[0] + (pending() if pending is not None else 0)


def quickack(sock: socket.socket) -> None:
    if QUICKACK is not None:
        sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)


def take_over_reads(client: aiomqtt.Client) -> bool:
    """Replace aiomqtt's reader on the connected client's socket with ours; whether it did (a
    websocket transport is left to aiomqtt). Call once connected (aiomqtt's reader is in place)."""
    mqtt = client._client  # noqa: SLF001 - aiomqtt has no public hook for its socket reader
    sock = mqtt.socket()
    if not isinstance(sock, socket.socket):
        return False
    loop = asyncio.get_running_loop()
    fd = sock.fileno()
    loop.remove_reader(fd)
    loop.add_reader(fd, _read, client, mqtt, sock)
    quickack(sock)
    return True


def _read(client: aiomqtt.Client, mqtt: paho.Client, sock: socket.socket) -> None:
    try:
        for _ in range(MAX_PACKETS):
            if mqtt.loop_read() != paho.MQTT_ERR_SUCCESS or mqtt.socket() is not sock:
                return  # paho has reported the connection lost (aiomqtt's on_disconnect)
            if waiting_bytes(sock) == 0:
                break
        quickack(sock)
    except Exception as exc:  # noqa: BLE001 - as aiomqtt's own reader: the connection is lost
        disconnected = client._disconnected  # noqa: SLF001 - how aiomqtt learns of it
        if not disconnected.done():
            disconnected.set_exception(exc)
