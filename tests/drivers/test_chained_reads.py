"""The status poll's chained exchanges (Session.exchange_all) against a scripted treadmill on a
real pty: one request on the wire at a time, each answer before the next request, and every
failure handled as the one-at-a-time exchanges handle it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import tty
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from waiting import until

from treadctl.drivers.errors import LinkLost, Rejected, TimedOut
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.drivers.trackmaster_codec import Op

C0, C1, C2 = bytes([Op.GET_STATE]), bytes([Op.GET_SPEED]), bytes([Op.GET_ELEVATION])
ANSWERS = {
    bytes([Op.STOP]): b"\xb2",
    C0: b"\xd0\x31",  # stopped
    C1: b"\xd1" + b"0020",  # 2.0 mph forward
    C2: b"\xd2" + b"0050",  # 5.0 %
}
Script = Callable[[bytes], bytes | None]  # a request's answer; None: stay silent


@dataclass
class Peer:
    """The treadmill's end of a pty: answers each one-byte request after `delay_s`, and logs
    what it received and sent in order, so a request written before the answer ahead of it
    shows as two requests in a row."""

    master: int
    path: str
    delay_s: float = 0.01
    log: list[tuple[str, bytes]] = field(default_factory=list)
    scripts: dict[bytes, list[Script]] = field(default_factory=dict)

    def requests(self) -> list[bytes]:
        return [data for kind, data in self.log if kind == "rx"]

    def readable(self) -> None:
        try:
            data = os.read(self.master, 1024)
        except OSError:
            return
        loop = asyncio.get_running_loop()
        for i in range(len(data)):
            request = data[i : i + 1]
            self.log.append(("rx", request))
            queued = self.scripts.get(request)
            answer = queued.pop(0)(request) if queued else ANSWERS.get(request, b"\xbf")
            if answer is not None:
                loop.call_later(self.delay_s, self._send, answer)

    def _send(self, answer: bytes) -> None:
        self.log.append(("tx", answer))
        os.write(self.master, answer)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    master, slave = os.openpty()
    tty.setraw(slave)
    p = Peer(master, os.ttyname(slave))
    loop = asyncio.get_running_loop()
    loop.add_reader(master, p.readable)
    try:
        yield p
    finally:
        loop.remove_reader(master)
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
async def driver(peer: Peer) -> AsyncIterator[WoodwayDriver]:
    async with WoodwayDriver(peer.path, response_timeout_s=0.1) as d:
        peer.log.clear()
        yield d


def alternates(log: list[tuple[str, bytes]]) -> bool:
    """Each request answered before the next one came."""
    kinds = [kind for kind, _ in log]
    return all(a != b for a, b in itertools.pairwise(kinds))


async def test_each_request_waits_for_the_answer_ahead_of_it(
    peer: Peer, driver: WoodwayDriver
) -> None:
    for _ in range(5):
        status = await driver.read_status()
        assert status.speed_kmh == pytest.approx(3.219, abs=0.01)
        assert status.incline_pct == 5.0
        assert not status.running
    polls = b"".join(peer.requests()).split(C0)[1:]
    # the elevation at the first poll, then (still, under a second later) not: elevation_reads.py
    assert polls[0] == C1 + C2
    assert set(polls[1:]) <= {C1, C1 + C2}
    assert len(polls) == 5
    assert alternates(peer.log), peer.log


async def test_an_unanswered_request_is_tried_again_and_counted(
    peer: Peer, driver: WoodwayDriver
) -> None:
    misses_at_c2: list[int] = []

    def c2(request: bytes) -> bytes:
        misses_at_c2.append(driver._session.misses)
        return ANSWERS[request]

    peer.scripts[C1] = [lambda _r: None]  # the first C1 goes unanswered
    peer.scripts[C2] = [c2]
    status = await driver.read_status()
    assert status.incline_pct == 5.0
    assert peer.requests() == [C0, C1, C1, C2]
    assert misses_at_c2 == [1]  # paid off by C2's answer, as with one exchange at a time


async def test_garbage_for_an_answer_is_a_miss_then_the_retry(
    peer: Peer, driver: WoodwayDriver
) -> None:
    peer.scripts[C2] = [lambda _r: b"\xd9\x99"]
    status = await driver.read_status()
    assert status.incline_pct == 5.0
    assert peer.requests() == [C0, C1, C2, C2]


async def test_misses_in_a_row_lose_the_link(peer: Peer, driver: WoodwayDriver) -> None:
    peer.scripts[C0] = [lambda _r: None] * 3
    with pytest.raises(TimedOut):  # the first poll: a try and its retry
        await driver.read_status()
    with pytest.raises(LinkLost, match="no valid answer to 3 requests"):
        await driver.read_status()
    assert peer.requests() == [C0, C0, C0]


async def test_a_refusal_ends_the_poll_before_the_next_request(
    peer: Peer, driver: WoodwayDriver
) -> None:
    peer.scripts[C0] = [lambda _r: b"\xbf"]
    with pytest.raises(Rejected, match="BF"):
        await driver.read_status()
    await driver.read_status()  # everything the refused poll wrote has reached the peer now
    assert peer.requests() == [C0, C0, C1, C2]


async def test_a_stray_stop_ack_ahead_of_an_answer_is_skipped(
    peer: Peer, driver: WoodwayDriver
) -> None:
    peer.scripts[C1] = [lambda _r: b"\xb2" + ANSWERS[C1]]  # the e-stop's ack, then the answer
    status = await driver.read_status()
    assert status.speed_kmh == pytest.approx(3.219, abs=0.01)
    assert driver._session.misses == 0


async def test_a_poll_cancelled_mid_run_leaves_no_answer_for_the_next(
    peer: Peer, driver: WoodwayDriver
) -> None:
    peer.delay_s = 0.05
    poll = asyncio.create_task(driver.read_status(), name="test.poll")
    await until(lambda: C1 in peer.requests(), what="C1 on the wire")
    poll.cancel()
    with pytest.raises(asyncio.CancelledError):
        await poll
    await until(lambda: ("tx", ANSWERS[C1]) in peer.log, what="C1's late answer sent")
    peer.delay_s = 0.01
    # Running now (for a retry too, should the late D1 come during C0 and be refused as its
    # answer): the late D1 is never taken for C0's answer, nor shifts the answers after it.
    peer.scripts[C0] = [lambda _r: b"\xd0\x32"] * 2
    status = await driver.read_status()
    assert status.running
    assert status.incline_pct == 5.0


async def test_the_port_closing_mid_run_is_a_lost_link(peer: Peer, driver: WoodwayDriver) -> None:
    def hang_up(_r: bytes) -> bytes | None:
        asyncio.get_running_loop().remove_reader(peer.master)
        os.close(peer.master)
        return None

    peer.scripts[C1] = [hang_up]
    with pytest.raises(LinkLost):
        async with asyncio.timeout(2.0):
            while True:
                await driver.read_status()
