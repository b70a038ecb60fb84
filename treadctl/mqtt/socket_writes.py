"""How the daemon writes to its broker socket: a packet goes out when it is queued.

paho asks its event loop to watch the socket for writability after every packet it queues;
aiomqtt answers with `call_soon_threadsafe(add_writer)` (it may be asked from the thread that
connected). So every publish cost a write to the loop's self-pipe, a wake-up to read it, an
`epoll_ctl` to add the writer, a turn of the loop for the socket to be reported writable,
and an `epoll_ctl` to remove it: five system calls and two turns around one `send`. Under a
flood of junk commands that was the daemon's largest cost (docs/performance.md), at 5 Hz a
fifth of its wake-ups.

Here, on the event loop's thread, paho's request is answered by writing at once; only what
the socket does not take (its buffer full) waits for a writer, as before. From another thread
the request goes to aiomqtt's own handler, as it does from inside one of paho's callbacks
(writing there would deadlock on paho's callback lock when the packet's own callback ran).
Nothing is dropped or reordered: paho still writes its queue in order, and QoS and retries are
paho's as before.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho


def take_over_writes(client: aiomqtt.Client) -> None:
    """Write at once on the loop's thread. Call once connected, from the event loop."""
    mqtt = client._client  # noqa: SLF001 - aiomqtt has no public hook for its socket writer
    asyncio.get_running_loop()  # on the loop's thread: that is the thread it writes from
    own_thread = threading.get_ident()
    aiomqtt_handler = mqtt.on_socket_register_write
    in_callback = mqtt._in_callback_mutex  # noqa: SLF001 - held while paho runs a callback

    def register_write(c: paho.Client, userdata: Any, sock: Any) -> None:
        if (
            threading.get_ident() != own_thread
            or aiomqtt_handler is None
            or not in_callback.acquire(blocking=False)
        ):
            # Another thread, or inside one of paho's callbacks (a publish made while a message
            # is handled): its write would take that lock again. paho's own loop defers then too.
            if aiomqtt_handler is not None:
                aiomqtt_handler(c, userdata, sock)
            return
        in_callback.release()
        try:
            # paho marked the socket registered before calling us, so its own re-registering
            # after a partial write is a no-op: what is left is ours to watch.
            mqtt.loop_write()
        except Exception as exc:  # noqa: BLE001 - as aiomqtt's writer: the connection is lost
            disconnected = client._disconnected  # noqa: SLF001 - how aiomqtt learns of it
            if not disconnected.done():
                disconnected.set_exception(exc)
            return
        if mqtt.want_write():
            aiomqtt_handler(c, userdata, sock)

    mqtt.on_socket_register_write = register_write


def qos0_publisher(client: aiomqtt.Client) -> Callable[[str, bytes], paho.MQTTMessageInfo]:
    """paho's own publish at QoS 0, called from the loop's thread: with `take_over_writes` the
    packet is on the socket when it returns, and nothing is awaited. For telemetry sent in a
    controller tick rather than by a task woken for it (mqtt/outbox.py)."""
    mqtt = client._client  # noqa: SLF001 - aiomqtt's publish is a coroutine, even at QoS 0

    def publish(topic: str, payload: bytes) -> paho.MQTTMessageInfo:
        return mqtt.publish(topic, payload, qos=0)

    return publish
