"""Login throttling (pure; the caller passes a monotonic `now`).

Failed log-ins are counted per user name and per client address over a sliding window: past
the limit, further attempts are refused without checking the password until the oldest counted
failure leaves the window. Per name stops guessing one account's password from many places;
per address stops one place trying many names. The counts live in the service's memory: a
restart forgets them, which costs an attacker a restart they cannot cause.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

WINDOW_S = 15 * 60.0
PER_NAME = 5
PER_ADDRESS = 20
MAX_KEYS = 10_000  # a flood of made-up names cannot grow memory without bound


@dataclass
class _Failures:
    limit: int
    window_s: float
    times: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def wait_s(self, key: str, now: float) -> float:
        found = self.times.get(key)
        if found is None:
            return 0.0
        while found and now - found[0] >= self.window_s:
            found.popleft()
        if not found:
            del self.times[key]
            return 0.0
        if len(found) < self.limit:
            return 0.0
        return found[-self.limit] + self.window_s - now

    def add(self, key: str, now: float) -> None:
        found = self.times.pop(key, None) or deque(maxlen=self.limit)
        found.append(now)
        self.times[key] = found  # most recent last
        while len(self.times) > MAX_KEYS:
            self.times.popitem(last=False)

    def clear(self, key: str) -> None:
        self.times.pop(key, None)


@dataclass
class LoginThrottle:
    window_s: float = WINDOW_S
    per_name: int = PER_NAME
    per_address: int = PER_ADDRESS

    def __post_init__(self) -> None:
        self._names = _Failures(self.per_name, self.window_s)
        self._addresses = _Failures(self.per_address, self.window_s)

    def wait_s(self, name: str, address: str, now: float) -> float:
        """Seconds before this name may be tried from this address again (0: go ahead)."""
        return max(
            self._names.wait_s(name.strip().lower(), now),
            self._addresses.wait_s(address, now),
        )

    def failed(self, name: str, address: str, now: float) -> None:
        self._names.add(name.strip().lower(), now)
        self._addresses.add(address, now)

    def succeeded(self, name: str) -> None:
        """A right password clears the name's count (not the address's: one right password
        does not excuse nineteen guesses at other names)."""
        self._names.clear(name.strip().lower())
