"""`treadctl status --watch`: a line per message until Ctrl-C or SIGTERM; a lost broker is
retried, one unreachable at the start is not."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable

import aiomqtt

from treadctl.cli_support import ExitCode
from treadctl.client import render as show
from treadctl.client.transport import ClientError, Target, decode, new_client, next_message, text

WATCH_RECONNECT_S = 1.0


class Printer:
    """Lines for `status --watch`: one per availability or state change, event and telemetry."""

    def __init__(self, target: Target, *, as_json: bool) -> None:
        self.topics = target.topics
        self.as_json = as_json
        self.last_state_line: str | None = None
        self.seen_state = False

    def __call__(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        data = decode(message.payload)
        is_state = message.topic.matches(self.topics.state) and isinstance(data, dict)
        self.seen_state = self.seen_state or is_state
        if self.as_json:
            self._emit(json.dumps({"topic": topic, "payload": data}))
            return
        if is_state:
            line = show.state_line(data)
            if line == self.last_state_line:
                return
            self.last_state_line = line
        elif message.topic.matches(self.topics.telemetry) and isinstance(data, dict):
            line = show.telemetry_line(data)
        elif message.topic.matches(self.topics.event) and isinstance(data, dict):
            line = show.event_line(data)
        elif message.topic.matches(self.topics.availability):
            line = f"availability {text(message.payload)}"
        else:
            line = f"{topic} {text(message.payload)}"
        self._emit(f"{show.stamp(time.time())} {line}")

    @staticmethod
    def _emit(line: str) -> None:
        print(line, flush=True)


async def watch(target: Target, timeout: float, *, as_json: bool) -> int:
    """Print until interrupted. A lost broker is retried; one unreachable at first is not."""
    topics = target.topics
    printer = Printer(target, as_json=as_json)
    subscriptions = [
        (topics.availability, 1),
        (topics.state, 1),
        (topics.event, 1),
        (topics.telemetry, 0),
    ]
    ever_connected = False
    while True:
        connected = False
        try:
            # Connecting is bounded by the client's own timeout (socket, then CONNACK).
            async with new_client(target, timeout) as client:
                connected = ever_connected = True
                await client.subscribe(subscriptions)
                await _print_messages(client, printer, target, timeout)
        except aiomqtt.MqttError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from exc  # interrupted while disconnecting
            if not ever_connected:
                raise ClientError(
                    f"cannot connect to the MQTT broker at {target.broker}: {exc}"
                ) from None
            if connected:
                print(
                    f"treadctl: lost the connection to {target.broker} ({exc}); reconnecting",
                    file=sys.stderr,
                    flush=True,
                )
            await asyncio.sleep(WATCH_RECONNECT_S)


async def _print_messages(
    client: aiomqtt.Client, printer: Printer, target: Target, timeout: float
) -> None:
    """Print every message; say once on stderr when no state arrived within `timeout`."""
    quiet_until = asyncio.get_running_loop().time() + timeout
    warned = False
    while True:
        until = None if warned or printer.seen_state else quiet_until
        message = await next_message(client.messages, until)
        if message is not None:
            printer(message)
            continue
        warned = True
        print(
            f"treadctl: nothing retained on {target.topics.state} within {timeout:g} s: "
            "the daemon has not run yet with this device.id and mqtt.prefix; waiting",
            file=sys.stderr,
            flush=True,
        )


def run_until_interrupted(main: Callable[[], Awaitable[int]]) -> int:
    """Run `main`; SIGINT (Ctrl-C) and SIGTERM end it with exit 0."""

    async def guarded() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        return await main()

    try:
        return asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        return ExitCode.OK
