"""Values written in the form pulumi-docker reads them back, so a refresh finds no difference.

pulumi-docker bridges kreuzwerker/terraform-provider-docker. After every create and on every
refresh the provider reads the container back from the engine and stores what it reads; a value the
program wrote in another spelling then differs from the state, and since ``cpus`` and the
``healthcheck`` force a replacement, each ``pulumi up`` would replace the container and
``pulumi preview --refresh --expect-no-changes`` would always fail. So the program writes:

- ``cpus`` as the provider prints ``HostConfig.NanoCPUs`` (``nanoInt64ToDecimalString``):
  ``1.0``, ``2.0``, ``0.5``, ``1.25``, and, for whole counts of ten or more, ``10.`` (sic);
- durations as Go's ``time.Duration.String()`` prints them (``5s``, ``1m0s``, ``15m0s``).

Inputs are whole nanoseconds, as the engine stores them.
"""

from __future__ import annotations

import re
from fractions import Fraction

NANOS_PER_SECOND = 10**9


def go_duration(seconds: float) -> str:
    """``time.Duration(seconds * 1e9).String()`` for a non-negative duration."""
    nanos = round(Fraction(seconds) * NANOS_PER_SECOND)
    if nanos < 0:
        raise ValueError(f"a negative duration: {seconds}")
    if nanos == 0:
        return "0s"
    if nanos < NANOS_PER_SECOND:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if nanos >= size:
                return _decimal(nanos, size) + unit
    hours, rest = divmod(nanos, 3600 * NANOS_PER_SECOND)
    minutes, rest = divmod(rest, 60 * NANOS_PER_SECOND)
    text = _decimal(rest, NANOS_PER_SECOND) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return text


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": NANOS_PER_SECOND,
    "m": 60 * NANOS_PER_SECOND,
    "h": 3600 * NANOS_PER_SECOND,
}


def parse_go_duration(text: str) -> int:
    """Nanoseconds of a Go duration ("1m30s", "15s", "500ms"), as ``time.ParseDuration`` reads it."""
    if text in ("0", ""):
        return 0
    position, total = 0, Fraction(0)
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise ValueError(f"{text!r} is not a Go duration (e.g. 15s, 1m30s, 500ms)")
        total += Fraction(match.group(1)) * _DURATION_UNIT_NS[match.group(2)]
        position = match.end()
    return int(total)


def _decimal(amount: int, unit: int) -> str:
    """``amount / unit`` (``unit`` a power of ten) as Go prints it: no trailing zeros."""
    whole, rest = divmod(amount, unit)
    if not rest:
        return str(whole)
    return f"{whole}.{str(rest).rjust(len(str(unit)) - 1, '0').rstrip('0')}"


def provider_cpus(cpus: float) -> str:
    """``cpus`` as the provider reads ``NanoCPUs`` back (``nanoInt64ToDecimalString``)."""
    nanos = round(Fraction(cpus) * NANOS_PER_SECOND)
    if nanos <= 0:
        raise ValueError(f"cpus must be positive, not {cpus}")
    whole, rest = divmod(nanos, NANOS_PER_SECOND)
    nine_places = f"{whole}.{rest:09d}"  # big.Rat.FloatString(9)
    if nine_places.count("0") == 9:  # the provider's test for "a round value", zeros of the whole part included
        tenths = (nanos * 10 + NANOS_PER_SECOND // 2) // NANOS_PER_SECOND  # FloatString(1): half away from zero
        return f"{tenths // 10}.{tenths % 10}"
    return nine_places.rstrip("0")


def parse_cpus(text: str) -> int:
    """The nano-CPUs the provider (Docker's ``--cpus`` parser, a ``big.Rat``) makes of ``text``."""
    if not re.fullmatch(r"\d+(\.\d*)?|\.\d+", text):
        raise ValueError(f"not a decimal CPU count: {text!r}")
    nanos = Fraction(text) * NANOS_PER_SECOND
    if nanos.denominator != 1:
        raise ValueError(f"{text!r} is finer than one nano-CPU")
    return int(nanos)


def cpus_round_trip(cpus: float) -> bool:
    """Whether the provider reads ``provider_cpus(cpus)`` back as itself (``0.05`` reads back as ``0.1``)."""
    written = provider_cpus(cpus)
    return provider_cpus(parse_cpus(written) / NANOS_PER_SECOND) == written and parse_cpus(written) == round(
        Fraction(cpus) * NANOS_PER_SECOND
    )
