"""Synthetic but plausible sessions: ramps, standstills before reversals, heart rate that follows
the work. Timestamps are made up (no waiting), so a 20-minute session records in milliseconds."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from treadctl.core.program import Plan
from treadctl.store import EndedHow, Sample, SessionStore

RAMP_KMH_PER_S = 0.5  # about 0.14 m/s², inside the safety ramp
STANDSTILL_S = 5  # before a change of belt direction: standstill + countdown


@dataclass(frozen=True)
class PhaseSpec:
    label: str
    walk: str  # forward | backward
    speed_kmh: float
    duration_s: int
    incline_pct: float = 0.0


@dataclass
class Synth:
    """What was recorded, to compare with what is read back."""

    session_id: str
    started: float
    phases: list[tuple[PhaseSpec, float]] = field(default_factory=list)  # spec, start ts
    samples: list[Sample] = field(default_factory=list)


UPHILL = [
    PhaseSpec("warm-up", "forward", 2.5, 180),
    PhaseSpec("backward, level", "backward", 1.5, 240),
    PhaseSpec("backward, 5 %", "backward", 1.5, 240, 5.0),
    PhaseSpec("backward, 7.5 %", "backward", 1.4, 240, 7.5),
    PhaseSpec("backward, 10 %", "backward", 1.3, 240, 10.0),
    PhaseSpec("cool-down", "forward", 2.0, 180),
]


def belt_of(walk: str) -> str:
    return "reverse" if walk == "backward" else "forward"


def synthesise(
    session_id: str,
    started: float,
    phases: list[PhaseSpec],
    *,
    heart_rate: bool = True,
    rate_hz: float = 1.0,
    stop_after_s: float | None = None,
    seed: int = 7,
) -> Synth:
    rng = random.Random(seed)
    out = Synth(session_id, started)
    dt = 1.0 / rate_hz
    t = 0.0
    speed = 0.0
    incline = 0.0
    distance = 0.0
    hr = 72.0
    previous_belt: str | None = None

    def tick(index: int, spec: PhaseSpec, target: float, *, ramp_incline: bool = True) -> None:
        nonlocal t, speed, incline, distance, hr
        step = RAMP_KMH_PER_S * dt
        speed = min(target, speed + step) if speed < target else max(target, speed - step)
        if ramp_incline:
            incline += max(-0.5, min(0.5, spec.incline_pct - incline))
        distance += speed / 3.6 * dt
        effort = 70 + 14 * speed + 2.2 * incline + (6 if spec.walk == "backward" else 0)
        hr += (effort - hr) * 0.04 + rng.uniform(-0.8, 0.8)
        out.samples.append(
            Sample(
                ts=started + t,
                elapsed_s=t,
                speed_kmh=round(speed, 2),
                belt=belt_of(spec.walk),
                walk=spec.walk,
                incline_pct=round(incline, 1),
                target_kmh=target,
                distance_m=round(distance, 2),
                heart_rate_bpm=round(hr) if heart_rate else None,
                phase_index=index,
                mode="running",
            )
        )
        t += dt

    for index, spec in enumerate(phases):
        if stop_after_s is not None and t >= stop_after_s:
            break
        belt = belt_of(spec.walk)
        if previous_belt is not None and belt != previous_belt:
            while speed > 0:  # ramp to a standstill before the belt may turn
                tick(index - 1, phases[index - 1], 0.0, ramp_incline=False)
            for _ in range(int(STANDSTILL_S * rate_hz)):
                tick(index - 1, phases[index - 1], 0.0, ramp_incline=False)
        previous_belt = belt
        out.phases.append((spec, started + t))
        end = t + spec.duration_s
        while t < end - 1e-9:
            if stop_after_s is not None and t >= stop_after_s:
                break
            tick(index, spec, spec.speed_kmh)
    return out


def record(
    store: SessionStore,
    synth: Synth,
    *,
    program: str,
    plan: Plan | None = None,
    how: EndedHow | None = "finished",
    cause: str | None = None,
    parameters: dict[str, float] | None = None,
    person: str | None = None,
) -> None:
    """Feed a synthetic session to the store the way the daemon would."""
    planned = sum(spec.duration_s for spec, _ in synth.phases) or None
    store.session_started(
        synth.session_id,
        device_id="treadmill",
        driver="sim",
        program=program,
        parameters=parameters or {},
        plan=plan,
        planned_s=float(planned) if planned else None,
        started=synth.started,
        person=person,
    )
    store.event(
        synth.session_id, synth.started, "session_started", {"program": program, "person": person}
    )
    starts = iter(synth.phases)
    next_phase = next(starts, None)
    index = 0
    for sample in synth.samples:
        while next_phase is not None and next_phase[1] <= sample.ts:
            spec, ts = next_phase
            store.phase_started(
                synth.session_id,
                index=index,
                label=spec.label,
                walk=spec.walk,
                belt=belt_of(spec.walk),
                speed_kmh=spec.speed_kmh,
                incline_pct=spec.incline_pct,
                planned_s=float(spec.duration_s),
                started=ts,
            )
            store.event(
                synth.session_id, ts, "phase_started", {"index": index, "phase": spec.label}
            )
            index += 1
            next_phase = next(starts, None)
        store.sample(synth.session_id, sample)
    if how is not None:
        ended = synth.samples[-1].ts if synth.samples else synth.started
        store.event(synth.session_id, ended, "session_finished", {"how": how})
        store.session_ended(
            synth.session_id, ended=ended, how=how, cause=cause, detail=None, summary=None
        )


async def populate(path: Path) -> dict[str, Synth]:
    """A small history: a full uphill session of mrs-k, a stopped manual one of nobody, without
    heart rate."""
    store = SessionStore(path)
    await store.start()
    uphill = synthesise("20261124T091500-ab12", 1_795_511_700.0, UPHILL)
    plan = Plan(sessions_per_week=3, weeks=4)
    record(store, uphill, program="backward-uphill", plan=plan, person="mrs-k")
    manual = synthesise(
        "20261126T170000-cd34",
        1_795_712_400.0,
        [PhaseSpec("manual", "backward", 1.2, 300)],
        heart_rate=False,
    )
    record(store, manual, program="manual", how="stopped", cause="command")
    await store.close()
    return {"uphill": uphill, "manual": manual}
