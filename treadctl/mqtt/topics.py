"""Every topic treadctl uses, from `mqtt.prefix` and `device.id`."""

from __future__ import annotations

from dataclasses import dataclass

from treadctl.config.models import Settings

COMMANDS = (
    "start",
    "stop",
    "pause",
    "resume",
    "skip",
    "estop",
    "reset",
    "set",
    "heartbeat",
    "select",
)


@dataclass(frozen=True, slots=True)
class Topics:
    base: str  # {prefix}/{device.id}
    device_id: str
    discovery_prefix: str
    heart_rate: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        base = f"{settings.mqtt.prefix.rstrip('/')}/{settings.device.id}"
        return cls(
            base=base,
            device_id=settings.device.id,
            discovery_prefix=settings.mqtt.discovery_prefix.rstrip("/"),
            heart_rate=settings.mqtt.heart_rate_topic or f"{base}/input/heart_rate",
        )

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def telemetry(self) -> str:
        return f"{self.base}/telemetry"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def commands(self) -> str:
        """The subscription for every command topic."""
        return f"{self.base}/cmd/+"

    def cmd(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    def response(self, name: str) -> str:
        return f"{self.base}/response/{name}"

    def command_name(self, topic: str) -> str | None:
        """`start` for `…/cmd/start`; None for any other topic."""
        head = f"{self.base}/cmd/"
        if topic.startswith(head) and "/" not in topic[len(head) :]:
            return topic[len(head) :]
        return None

    @property
    def record(self) -> str:
        """Each ended session's record, for the clinic service (records.py)."""
        return f"{self.base}/record"

    @property
    def record_ack(self) -> str:
        return f"{self.base}/record/ack"

    @property
    def clinic_availability(self) -> str:
        """The clinic service's own `online`/`offline`, beside the devices: {prefix}/clinic/…"""
        prefix = self.base.removesuffix(f"/{self.device_id}")
        return f"{prefix}/clinic/availability"

    @property
    def discovery(self) -> str:
        return f"{self.discovery_prefix}/device/treadctl_{self.device_id}/config"

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"
