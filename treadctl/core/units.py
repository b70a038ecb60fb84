"""Unit conversions. Inside treadctl speeds are km/h and inclines are percent."""

from __future__ import annotations

import math

KMH_PER_MPH = 1.609344
KMH_PER_MPS = 3.6
# Wire conversions round towards the slower value; this slack keeps exact values exact.
_EPS = 1e-6


def kmh_to_mph(kmh: float) -> float:
    return kmh / KMH_PER_MPH


def mph_to_kmh(mph: float) -> float:
    return mph * KMH_PER_MPH


def kmh_to_tenths_mph_floor(kmh: float) -> int:
    """Whole tenths of a mph, never faster than asked (a cap in km/h stays a cap on the wire)."""
    if kmh < 0:
        raise ValueError("speed magnitude must not be negative")
    return math.floor(kmh_to_mph(kmh) * 10 + _EPS)


def tenths_mph_to_kmh(tenths: int) -> float:
    return mph_to_kmh(tenths / 10)


def floor_to_step(value: float, step: float) -> float:
    """The largest multiple of `step` not above `value` (for non-negative values)."""
    return math.floor(value / step + _EPS) * step


def accel_kmh_per_s(mps2: float) -> float:
    return mps2 * KMH_PER_MPS
