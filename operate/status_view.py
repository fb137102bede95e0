"""A :class:`~operate.status.StackStatus` as a compact terminal table and as a small static HTML page."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from operate.status import EGRESS_WINDOW, ContainerStatus, StackStatus, Usage
from sandbox_model.naming import docker_name

#: Destinations shown per decision (the most recently seen).
DESTINATIONS_SHOWN = 8
NO_EGRESS = "no egress gateway in this stack: the workspace has no route out (egress: none)"


def size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= factor:
            return f"{value / factor:.1f} {unit}" if unit == "GiB" else f"{value / factor:.0f} {unit}"
    return f"{value} B"


def _of_limit(amount: str, limit: str, percent: float | None) -> str:
    return f"{amount} (no limit)" if percent is None else f"{amount} / {limit} ({percent:.0f}%)"


def cpu_cell(use: Usage) -> str:
    if use.cpu_cores is None:
        return "-"
    return _of_limit(f"{use.cpu_cores:.2f} CPU", f"{use.cpu_limit or 0:g} CPU", use.cpu_percent)


def memory_cell(use: Usage) -> str:
    if use.memory_bytes is None:
        return "-"
    return _of_limit(size(use.memory_bytes), size(use.memory_limit), use.memory_percent)


def when(moment: datetime | str | None, now: datetime) -> str:
    """A time of today (UTC) as HH:MM:SS, an older one with its date."""
    if moment is None or moment == "-":
        return "-"
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return str(moment)
    return moment.strftime("%H:%M:%S" if moment.date() == now.date() else "%Y-%m-%d %H:%M")


def short_name(status: StackStatus, name: str) -> str:
    prefix = docker_name(status.stack, "")
    return name[len(prefix) :] if name.startswith(prefix) else name


def headline(status: StackStatus) -> str:
    running = sum(c.state == "running" for c in status.containers)
    healthy = sum(c.health == "healthy" for c in status.containers)
    return (
        f"stack {status.stack}: {len(status.containers)} containers, {running} running, {healthy} healthy "
        f"(names: {docker_name(status.stack, '<name>')}; {status.taken.strftime('%Y-%m-%d %H:%M:%S')} UTC)"
    )


def container_rows(status: StackStatus) -> list[list[str]]:
    rows = []
    for c in status.containers:
        rows.append(
            [
                short_name(status, c.name),
                c.role,
                c.state,
                c.health,
                str(c.restarts),
                cpu_cell(c.usage),
                memory_cell(c.usage),
                "-" if c.usage.pids is None else str(c.usage.pids),
            ]
        )
    return rows


CONTAINER_HEADER = ["container", "role", "state", "health", "restarts", "cpu / limit", "memory / limit", "procs"]
EXECUTOR_HEADER = ["executor", "jobs", "failed", "timed out", "last failure", "last service error"]
EGRESS_HEADER = ["decision", "destination", "requests", "last seen", "last status"]


def executor_rows(status: StackStatus) -> list[list[str]]:
    rows = []
    for name, jobs in status.executors.items():
        failure = jobs.last_failure
        error = jobs.last_error
        rows.append(
            [
                short_name(status, name),
                str(jobs.jobs),
                str(jobs.failed),
                str(jobs.timed_out),
                f"{when(failure.time, status.taken)} {failure.describe()}" if failure else "-",
                f"{when(error.time, status.taken)} {error.message}" if error else "-",
            ]
        )
    return rows


def egress_rows(status: StackStatus) -> list[list[str]]:
    rows: list[list[str]] = []
    if status.egress is None:
        return rows
    for decision in ("allowed", "denied"):
        for d in status.egress.destinations[decision][:DESTINATIONS_SHOWN]:
            rows.append(
                [
                    decision,
                    d.name,
                    str(d.requests),
                    when(d.last_time, status.taken),
                    d.last_status + (f" {d.last_error}" if d.last_error else ""),
                ]
            )
    return rows


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def egress_title(status: StackStatus) -> str:
    egress = status.egress
    if egress is None:
        return NO_EGRESS
    return (
        f"egress gateway ({short_name(status, egress.container)}): {egress.decisions} decisions in the last "
        f"{EGRESS_WINDOW} lines of its log, by destination"
    )


def render_table(status: StackStatus) -> str:
    parts = [headline(status), "", table(CONTAINER_HEADER, container_rows(status))]
    stopped = [c for c in status.containers if c.last_line]
    for c in stopped:
        parts.append(f"  {short_name(status, c.name)} last logged: {c.last_line}")
    parts += ["", table(EXECUTOR_HEADER, executor_rows(status)) if status.executors else "no executors", ""]
    if status.egress is None:
        parts.append(NO_EGRESS)
    elif not status.egress.decisions:
        parts.append(f"{egress_title(status)}: none yet")
    else:
        parts += [egress_title(status), table(EGRESS_HEADER, egress_rows(status))]
    return "\n".join(parts)


# --- HTML --------------------------------------------------------------------------------------

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.2em; } h2 { font-size: 1em; margin-top: 1.5em; }
table { border-collapse: collapse; } th, td { padding: .25em .7em; text-align: left; border-bottom: 1px solid #ddd; }
th { background: #f3f3f3; } td.num { text-align: right; }
.bar { display: inline-block; width: 6em; height: .7em; background: #eee; margin-right: .4em; vertical-align: middle; }
.bar span { display: block; height: 100%; background: #4a8; } .bar span.high { background: #d63; }
.bad { color: #b00; font-weight: 600; } .good { color: #070; } .muted { color: #777; }
"""


def _bar(percent: float | None) -> str:
    if percent is None:
        return ""
    width = max(0.0, min(percent, 100.0))
    high = ' class="high"' if percent >= 80 else ""
    return f'<span class="bar"><span{high} style="width:{width:.0f}%"></span></span>'


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _state_cell(c: ContainerStatus) -> str:
    good = c.state == "running" and c.health in ("healthy", "-")
    return f'<span class="{"good" if good else "bad"}">{html.escape(c.state)}</span>'


def render_html(status: StackStatus) -> str:
    e = html.escape
    rows = []
    for c, text in zip(status.containers, container_rows(status), strict=True):
        health = (
            f'<span class="{"good" if c.health == "healthy" else "bad" if c.health != "-" else "muted"}">'
            f"{e(c.health)}</span>"
        )
        rows.append(
            [
                e(text[0]),
                e(c.role),
                _state_cell(c),
                health,
                e(text[4]),
                _bar(c.usage.cpu_percent) + e(text[5]),
                _bar(c.usage.memory_percent) + e(text[6]),
                e(text[7]),
            ]
        )
    parts = [f"<h1>{e(headline(status))}</h1>", _html_table(CONTAINER_HEADER, rows)]
    for c in status.containers:
        if c.last_line:
            parts.append(f'<p class="bad">{e(short_name(status, c.name))} last logged: {e(c.last_line)}</p>')
    parts.append("<h2>executors</h2>")
    executor_html = [[e(cell) for cell in row] for row in executor_rows(status)]
    for row, jobs in zip(executor_html, status.executors.values(), strict=True):
        if jobs.failed:
            row[2] = f'<span class="bad">{row[2]}</span>'
    parts.append(_html_table(EXECUTOR_HEADER, executor_html) if status.executors else "<p>no executors</p>")
    parts.append("<h2>egress</h2>")
    if status.egress is None:
        parts.append(f"<p>{e(NO_EGRESS)}</p>")
    elif not status.egress.decisions:
        parts.append(f"<p>{e(egress_title(status))}: none yet</p>")
    else:
        egress = [
            [
                f'<span class="{"good" if row[0] == "allowed" else "bad"}">{e(row[0])}</span>',
                *(e(cell) for cell in row[1:]),
            ]
            for row in egress_rows(status)
        ]
        parts += [f"<p>{e(egress_title(status))}</p>", _html_table(EGRESS_HEADER, egress)]
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(status.stack)}: '
        f"opencode-sandbox status</title><style>{_STYLE.strip()}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
