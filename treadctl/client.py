"""`treadctl start|stop|pause|resume|skip|estop|reset|status`: a client of a running daemon.

It reads the daemon's own configuration for the broker (`mqtt.host`, `port`, `protocol`,
`username`, `password_file`, `tls`) and the topics (`mqtt.prefix`, `device.id`). A command
connects with a random client id, subscribes to `…/response/{name}`, publishes the command with
a fresh `id` (QoS 1, not retained) and waits for the response carrying that id. The `id` on the
standard response topic is enough to match the answer, with MQTT 5 and 3.1.1 alike.

Exit codes: 0 the daemon answered ok; 1 it answered with an error, did not answer within
`--timeout`, or the broker could not be reached; 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from treadctl import client_display as show
from treadctl.config import ConfigError, Settings, load_settings
from treadctl.mqtt import connection
from treadctl.mqtt.connection import (
    Credentials,
    MqttSetupError,
    credentials,
    tls_context,
)
from treadctl.mqtt.topics import Topics

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 3600.0
RETAINED_GRACE_S = 0.5
"""status: once the retained state or availability arrived, how long to wait for the other."""
WATCH_RECONNECT_S = 1.0

SIMPLE_COMMANDS = {  # name: (short help, description)
    "stop": ("stop the session: ramp down", "Stop the running session: a controlled ramp-down."),
    "pause": ("pause the session", "Pause the running session: the belt slows to a stop."),
    "resume": ("resume a paused session", "Continue a paused session."),
    "skip": ("skip to the next phase", "Move the running program on to its next phase."),
    "estop": (
        "emergency stop (latched)",
        "Emergency stop: the belt stops at once and starts are refused until `treadctl reset`.",
    ),
    "reset": (
        "clear an e-stop or fault",
        "Clear a latched emergency stop or a fault once the belt is still.",
    ),
}


class UsageError(Exception):
    """Bad arguments or configuration: exit 2."""


class ClientError(Exception):
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
    if config_path is None and (env := os.environ.get("TREADCTL_CONFIG")):
        config_path = Path(env)
    try:
        settings = load_settings(config_path)
        creds = credentials(settings.mqtt)
        tls = tls_context(settings.mqtt)
    except (ConfigError, MqttSetupError) as exc:
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


def _decode(payload: object) -> Any:
    """Parsed JSON, or the text when the payload is not JSON (`online`)."""
    if isinstance(payload, bytes | bytearray):
        text = bytes(payload).decode("utf-8", errors="replace")
    else:
        text = "" if payload is None else str(payload)
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _next_message(
    messages: aiomqtt.MessagesIterator, until: float | None
) -> aiomqtt.Message | None:
    """The next message, or None when the loop clock reaches `until` first (None: wait)."""
    try:
        async with asyncio.timeout_at(until):
            return await anext(messages)
    except TimeoutError:
        return None


# --- commands --------------------------------------------------------------------------------


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
                    data = _decode(message.payload)
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


def _print_response(name: str, response: dict[str, Any], *, as_json: bool) -> int:
    ok, line = show.response_line(name, response)
    if as_json:
        print(json.dumps(response))
    elif ok:
        print(line)
    else:
        print(line, file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAILURE


def _command_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.client_command != "start":
        return {}
    body: dict[str, Any] = {}
    if args.program is not None:
        body["program"] = args.program
    parameters = _parameters(args.param or [])
    if parameters:
        body["parameters"] = parameters
    return body


def _parameters(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not name.strip() or not math.isfinite(number):
            raise UsageError(
                f"--param {item!r}: use NAME=NUMBER, e.g. comfortable_backward_kmh=1.2"
            )
        out[name.strip()] = number
    return out


def cmd_command(args: argparse.Namespace) -> int:
    name: str = args.client_command
    try:
        body = _command_body(args)
        target = load_target(args.config_path)
    except UsageError as exc:
        print(f"treadctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        response = asyncio.run(request(target, name, body, args.timeout))
    except ClientError as exc:
        print(f"treadctl: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return _print_response(name, response, as_json=args.json)


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
                    message = await _next_message(client.messages, deadline)
                    if message is None:
                        break
                    data = _decode(message.payload)
                    if message.topic.matches(topics.availability) and isinstance(data, str):
                        found.availability = data
                    elif message.topic.matches(topics.state) and isinstance(data, dict):
                        found.state = data
                        found.state_raw = _text(message.payload)
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


def _text(payload: object) -> str:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload).decode("utf-8", errors="replace")
    return "" if payload is None else str(payload)


def _show_status(target: Target, found: Retained, timeout: float, *, as_json: bool) -> int:
    if found.state is None:
        print(
            f"{target.device}: offline: nothing retained on {target.topics.state} within "
            f"{timeout:g} s (is `treadctl run` running for this device.id and mqtt.prefix "
            f"on {target.broker}?)",
            file=sys.stderr if as_json else sys.stdout,
        )
        return EXIT_FAILURE
    if found.availability == "offline":
        if as_json:
            print(f"{target.device}: offline (the daemon is not connected)", file=sys.stderr)
            return EXIT_FAILURE
        summary = show.state_summary(found.state, device=target.device, availability="offline")
        summary[0] += " (the daemon is not connected; the last state it published:)"
        print("\n".join(summary))
        return EXIT_FAILURE
    if as_json:
        print(found.state_raw)
    else:
        print(
            "\n".join(show.state_summary(found.state, device=target.device, availability="online"))
        )
    return EXIT_OK


# --- status --watch --------------------------------------------------------------------------


class Printer:
    """Lines for `status --watch`: one per availability or state change, event and telemetry."""

    def __init__(self, target: Target, *, as_json: bool) -> None:
        self.topics = target.topics
        self.as_json = as_json
        self.last_state_line: str | None = None
        self.seen_state = False

    def __call__(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        data = _decode(message.payload)
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
            line = f"availability {_text(message.payload)}"
        else:
            line = f"{topic} {_text(message.payload)}"
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
                print(
                    f"treadctl: cannot connect to the MQTT broker at {target.broker}: {exc}",
                    file=sys.stderr,
                )
                return EXIT_FAILURE
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
        message = await _next_message(client.messages, until)
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


def _run_until_interrupted(main: Callable[[], Awaitable[int]]) -> int:
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
        return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    try:
        target = load_target(args.config_path)
    except UsageError as exc:
        print(f"treadctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.watch:
            return _run_until_interrupted(lambda: watch(target, args.timeout, as_json=args.json))
        found = asyncio.run(read_status(target, args.timeout))
    except ClientError as exc:
        print(f"treadctl: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # `treadctl status --watch | head`
        # Python would complain again when it flushes stdout on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return _show_status(target, found, args.timeout, as_json=args.json)


# --- the parsers -----------------------------------------------------------------------------


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_TIMEOUT_S:g} s")
    return value


def _common(parser: argparse.ArgumentParser, *, json_help: str) -> None:
    parser.add_argument(
        "--config",
        dest="config_path",
        type=Path,
        metavar="FILE",
        help="the daemon's TOML configuration, for the broker and topics "
        "(default: $TREADCTL_CONFIG)",
    )
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for the broker and the daemon (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("--json", action="store_true", help=json_help)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`start`, `stop`, `pause`, `resume`, `skip`, `estop`, `reset` and `status`."""
    response_json = "print the daemon's raw JSON response"
    start = sub.add_parser(
        "start",
        help="start a program (MQTT client of the daemon)",
        description="Start a program on the running daemon, over MQTT. Without PROGRAM, the "
        "program chosen with the `select` MQTT command (Home Assistant's program selector).",
    )
    start.add_argument("program", nargs="?", metavar="PROGRAM", help="the program's name")
    start.add_argument(
        "--param",
        action="append",
        metavar="NAME=NUMBER",
        help="a per-session program parameter, e.g. comfortable_backward_kmh=1.2 (repeatable)",
    )
    _common(start, json_help=response_json)
    start.set_defaults(func=cmd_command, client_command="start")

    for name, (short, description) in SIMPLE_COMMANDS.items():
        parser = sub.add_parser(name, help=f"{short} (MQTT client)", description=description)
        _common(parser, json_help=response_json)
        parser.set_defaults(func=cmd_command, client_command=name)

    status = sub.add_parser(
        "status",
        help="show the daemon's state (MQTT client)",
        description="Show the daemon's retained state. Exit 1 when it is offline.",
    )
    status.add_argument(
        "--watch",
        action="store_true",
        help="keep printing state changes, events and telemetry until Ctrl-C",
    )
    _common(
        status,
        json_help="print the raw state payload (with --watch: one JSON object per message, "
        '{"topic": …, "payload": …})',
    )
    status.set_defaults(func=cmd_status)
