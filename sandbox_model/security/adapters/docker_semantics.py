"""What Docker means by a setting, whichever adapter reads it: each stated once for both.

The pulumi-docker props and ``docker inspect`` spell these settings differently (and
the props may hold values unknown during a preview, which :mod:`.pulumi_props` sorts
out first); what they mean is decided here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The CFS period Docker uses when a CPU quota is given without one (microseconds).
DEFAULT_CPU_PERIOD_US = 100_000


def bind_volume_device(driver: str | None, options: Mapping[str, Any]) -> Any:
    """The host directory a volume exposes, when it is a bind mount in disguise; else None.

    A volume of the ``local`` driver (the default) with ``device=<dir>`` and ``type=none`` or
    ``o=bind``/``o=rbind`` (``docker volume create -o type=none -o o=bind -o device=<dir>``)
    mounts that host directory wherever the volume is mounted.
    """
    if (driver or "local") != "local":
        return None
    device = options.get("device")
    if device is None or device == "":
        return None
    words = str(options.get("o") or "").replace(",", " ").split()
    return device if options.get("type") == "none" or "bind" in words or "rbind" in words else None


def nano_cpus_from_quota(quota: float | None, period: float | None) -> float | None:
    """The CPU limit (in 1e-9 CPUs) a CFS quota per period stands for; None when the quota sets none."""
    if not quota or quota <= 0:
        return None
    return float(quota) / float(period or DEFAULT_CPU_PERIOD_US) * 1e9
