"""The client's side of MQTT: where the daemon is, one command and its answer, the retained state.

It reads the daemon's own configuration for the broker (`mqtt.host`, `port`, `protocol`,
`username`, `password_file`, `tls`) and the topics (`mqtt.prefix`, `device.id`). A command
connects with a random client id, subscribes to `…/response/{name}`, publishes the command with
a fresh `id` (QoS 1, not retained) and waits for the response carrying that id. The `id` on the
standard response topic is enough to match the answer, with MQTT 5 and 3.1.1 alike.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from treadctl.cli_support import CommandError, UsageError, load_config
from treadctl.config import Settings
from treadctl.mqtt import connection
from treadctl.mqtt.connection import (
    Credentials,
    MqttSetupError,
    credentials,
    tls_context,
)
from treadctl.mqtt.topics import Topics

RETAINED_GRACE_S = 0.5
"""status: once the retained state or availability arrived, how long to wait for the other."""


class ClientError(CommandError):
    """The command could not be carried out (no broker, no answer): exit 1."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the daemon is: broker, credentials and topics, from the configuration."""

    settings: Settings
    topics: Topics
    creds: Credentials
    tls: ssl.SSLContext | None

    @property
    def broker(self) -> str:
        return f"{self.settings.mqtt.host}:{self.settings.mqtt.port}"

    @property
    def device(self) -> str:
        return self.settings.device.id


def load_target(config_path: Path | None) -> Target:
    """The daemon's configuration (`--config`, else $TREADCTL_CONFIG, else the defaults)."""
    settings = load_config(config_path)
    try:
        creds = credentials(settings.mqtt)
        tls = tls_context(settings.mqtt)
    except MqttSetupError as exc:
        raise UsageError(str(exc)) from exc
    return Target(settings, Topics.from_settings(settings), creds, tls)


def new_client(target: Target, timeout: float) -> aiomqtt.Client:
    return connection.new_client(
        target.settings.mqtt,
        f"treadctl-cli-{secrets.token_hex(6)}",
        creds=target.creds,
        tls=target.tls,
        timeout_s=timeout,
    )


def text(payload: object) -> str:
    """A message's payload as text (invalid UTF-8 replaced)."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload).decode("utf-8", errors="replace")
    return "" if payload is None else str(payload)


def decode(payload: object) -> Any:
    """Parsed JSON, or the text when the payload is not JSON (`online`)."""
    raw = text(payload)
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def next_message(
    messages: aiomqtt.MessagesIterator, until: float | None
) -> aiomqtt.Message | None:
    """The next message, or None when the loop clock reaches `until` first (None: wait)."""
    try:
        async with asyncio.timeout_at(until):
            return await anext(messages)
    except TimeoutError:
        return None


# --- one command --------------------------------------------------------------------------------


@dataclass
class _Progress:
    connected: bool = False
    published: bool = False
    availability: str | None = None


async def request(
    target: Target, name: str, body: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Send one command and return the daemon's response; ClientError when there is none."""
    request_id = f"cli-{secrets.token_hex(6)}"
    payload = json.dumps({"id": request_id, **body}).encode()
    topics = target.topics
    answers = topics.response(name)
    progress = _Progress()
    try:
        async with asyncio.timeout(timeout):
            async with new_client(target, timeout) as client:
                progress.connected = True

                async def publish() -> None:
                    await client.publish(topics.cmd(name), payload, qos=1, retain=False)
                    progress.published = True  # the broker has it (PUBACK)

                subscribe = client.subscribe([(answers, 1), (topics.availability, 1)])
                if name == "estop":
                    # Waiting for nothing: the SUBSCRIBE and the PUBLISH leave in the same write,
                    # in this order, and the broker handles one connection's packets in order,
                    # so the subscription is in place before the e-stop reaches the daemon; the
                    # stop waits for no round trip. (Publishing first lost the answer now and
                    # then: the daemon can answer before the broker has read the SUBSCRIBE.)
                    await _in_order(subscribe, publish())
                else:
                    await subscribe  # subscribed before publishing: the answer cannot be missed
                    await publish()
                async for message in client.messages:
                    data = decode(message.payload)
                    if message.topic.matches(topics.availability):
                        progress.availability = data if isinstance(data, str) else None
                    elif (
                        message.topic.matches(answers)
                        and isinstance(data, dict)
                        and data.get("id") == request_id
                    ):
                        return data
    except TimeoutError:
        raise ClientError(_no_answer(target, name, timeout, progress)) from None
    except aiomqtt.MqttError as cause:
        if not progress.connected:
            raise ClientError(
                f"cannot connect to the MQTT broker at {target.broker}: {cause}"
                + _estop_warning(name, sent=False)
            ) from None
        raise ClientError(
            f"lost the connection to the MQTT broker at {target.broker}: {cause}"
            + _estop_warning(name, sent=progress.published)
        ) from None
    raise ClientError(f"the connection to {target.broker} ended without an answer")


async def _in_order(*calls: Awaitable[object]) -> None:
    """Start the calls in this order in one loop iteration (each writes its packet before its
    first await), then wait for all of them; the first error is raised."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _no_answer(target: Target, name: str, timeout: float, progress: _Progress) -> str:
    if not progress.connected:
        return f"cannot reach the MQTT broker at {target.broker} within {timeout:g} s" + (
            _estop_warning(name, sent=False)
        )
    base = target.topics.base
    if progress.availability == "offline":
        why = f"the daemon is offline ({base}/availability is 'offline')"
    elif progress.availability == "online":
        why = f"the daemon reports itself online on {base}/availability but did not answer"
    else:
        why = (
            f"no daemon has announced itself on {base}/availability: is `treadctl run` running "
            f'for device.id = "{target.device}" with mqtt.prefix = '
            f'"{target.settings.mqtt.prefix}" on {target.broker}?'
        )
    return (
        f"no answer to {name} within {timeout:g} s on {target.topics.response(name)}: {why}"
        + _estop_warning(name, sent=progress.published)
    )


def _estop_warning(name: str, *, sent: bool) -> str:
    if name != "estop":
        return ""
    if sent:
        return "\nthe emergency stop was sent but NOT confirmed: use the treadmill's stop button"
    return "\nthe emergency stop was NOT sent: use the treadmill's stop button"


# --- status ----------------------------------------------------------------------------------


@dataclass
class Retained:
    state: dict[str, Any] | None = None
    state_raw: str | None = None
    availability: str | None = None


async def read_status(target: Target, timeout: float) -> Retained:
    """The retained state and availability (either may be missing after `timeout`)."""
    topics = target.topics
    found = Retained()
    connected = False
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            async with new_client(target, timeout) as client:
                connected = True
                await client.subscribe([(topics.availability, 1), (topics.state, 1)])
                deadline = loop.time() + timeout
                while found.state is None or found.availability is None:
                    message = await next_message(client.messages, deadline)
                    if message is None:
                        break
                    data = decode(message.payload)
                    if message.topic.matches(topics.availability) and isinstance(data, str):
                        found.availability = data
                    elif message.topic.matches(topics.state) and isinstance(data, dict):
                        found.state = data
                        found.state_raw = text(message.payload)
                    else:
                        continue
                    # The broker sends retained messages at once: the other one is either
                    # right behind or not there.
                    deadline = min(deadline, loop.time() + RETAINED_GRACE_S)
    except TimeoutError:
        if not connected:
            raise ClientError(
                f"cannot reach the MQTT broker at {target.broker} within {timeout:g} s"
            ) from None
    except aiomqtt.MqttError as exc:
        verb = "lost the connection to" if connected else "cannot connect to"
        raise ClientError(f"{verb} the MQTT broker at {target.broker}: {exc}") from None
    return found
