"""An MQTT broker inside the process (amqtt), for `treadctl demo` and for tests on machines
without mosquitto. MQTT 3.1.1 only: clients of it must use `mqtt.protocol = "3.1.1"`.

amqtt is the optional `demo` extra: importing this module without it raises MissingExtraError.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from treadctl.extras import DEMO, MissingExtraError
from treadctl.sim.brokers import HOST, free_port
from treadctl.sim.lifecycle import Simulator

try:
    from amqtt.broker import Broker
except ModuleNotFoundError as exc:  # the daemon's install has no amqtt
    raise MissingExtraError(DEMO, "the embedded MQTT broker (treadctl demo)", exc.name) from exc


class EmbeddedBroker(Simulator):
    """`async with EmbeddedBroker() as broker:` listens on `broker.host:broker.port`."""

    def __init__(self, host: str = HOST, port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._broker: Broker | None = None

    async def start(self) -> None:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None


async def _serve(port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with EmbeddedBroker(port=port) as broker:
        print(f"listening {broker.host}:{broker.port}", flush=True)
        await stop.wait()


def main() -> None:
    """`python -m treadctl.sim.embedded_broker --port N`: a stand-in for mosquitto in tests."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
