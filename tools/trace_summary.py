#!/usr/bin/env python3
"""trace_summary.py TRACE.json OUT.svg [--rows N]: a one-page summary of a
CSP_TRACE file as a picture.

Every process is a row (grouped by OS process, in the order they began): a bar
over its life, coloured by what it was doing over time (running, blocked reading,
writing, in a choice, at a barrier, waiting for its processes, sleeping), and
beside it the share of its life it spent blocked and how many values it wrote
and read (the trace's flows). Rows past N (default 40) are left out, and the
picture says how many. The colours are those of csp::write_graph's graphs.

The picture is SVG (text needs a font, which an SVG leaves to its viewer); a
browser shows it, and `rsvg-convert -o out.png out.svg` (Debian's
librsvg2-bin) makes a PNG of it. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from xml.sax.saxutils import escape

# (what the slice's name begins with, what it is, colour): as csp/network.cpp colours a graph.
KINDS = [
    ("blocked reading", "blocked reading", "#a9cdf0"),
    ("blocked writing", "blocked writing", "#f5c28c"),
    ("blocked in a choice", "in a choice", "#d3b8ee"),
    ("waiting at barrier", "at a barrier", "#d9c7a7"),
    ("waiting for", "waiting for its processes", "#dddddd"),
    ("sleeping", "sleeping or timed", "#f7ee9c"),
]
RUNNING = ("running", "#b7e4a5")
OTHER = ("waiting (other)", "#cccccc")


def kind_of(name: str) -> tuple[str, str]:
    for prefix, what, colour in KINDS:
        if name.startswith(prefix):
            return what, colour
    return OTHER


class Track:
    def __init__(self, pid: int, tid: int) -> None:
        self.pid, self.tid = pid, tid
        self.name = f"track {tid}"
        self.begin: float | None = None
        self.end: float | None = None
        self.open: list[tuple[str, float]] = []  # slices begun, not yet ended
        self.slices: list[tuple[float, float, str]] = []  # (from, to, name) of waits
        self.wrote = 0
        self.read = 0


def summarise(events: list[dict]) -> tuple[dict[int, str], list[Track], float, float]:
    tracks: dict[tuple[int, int], Track] = {}  # each track's current life
    lives: list[Track] = []
    os_names: dict[int, str] = {}
    first, last = None, None

    def track(e: dict) -> Track:
        key = (e["pid"], e.get("tid", 0))
        t = tracks.get(key)
        # (A track whose life is over and begins again is another process:
        # a simulation's tracks are numbered afresh in every run.)
        if t is None or (e.get("ph") == "B" and t.end is not None and not t.open):
            fresh = Track(*key)
            if t is not None:
                fresh.name = t.name
            tracks[key] = t = fresh
            lives.append(t)
        return t

    for e in events:
        ph = e.get("ph")
        if ph == "M":
            if e.get("name") == "process_name":
                os_names[e["pid"]] = e["args"]["name"]
            elif e.get("name") == "thread_name":
                track(e).name = e["args"]["name"]
            continue
        ts = e.get("ts")
        if ts is None:
            continue
        first = ts if first is None else min(first, ts)
        last = ts if last is None else max(last, ts)
        t = track(e)
        if ph == "B":
            if t.begin is None and not t.open:
                t.begin = ts  # its life (the outermost slice)
            t.open.append((e.get("name", ""), ts))
        elif ph == "E" and t.open:
            name, since = t.open.pop()
            if t.open:
                t.slices.append((since, ts, name))
            else:
                t.end = ts
        elif ph == "s":
            t.wrote += 1
        elif ph == "f":
            t.read += 1
    if first is None:
        first = last = 0.0
    for t in lives:
        # (A slice still open at the end of the trace lasts until then.)
        while t.open:
            name, since = t.open.pop()
            if t.open:
                t.slices.append((since, last, name))
            else:
                t.end = last
    # Processes only (a track with a life), in the order they began, per OS process.
    lived = [t for t in lives if t.begin is not None]
    order = {pid: i for i, pid in enumerate(dict.fromkeys(t.pid for t in sorted(lived, key=lambda t: t.begin)))}
    lived.sort(key=lambda t: (order[t.pid], t.begin, t.tid))
    return os_names, lived, first, last


def draw(os_names: dict[int, str], tracks: list[Track], first: float, last: float, rows: int, title: str) -> str:
    shown = tracks[:rows]
    label_w, bar_w, stat_w, row_h, top = 220, 640, 200, 18, 70
    span = max(last - first, 1e-9)
    width = label_w + bar_w + stat_w + 20
    groups = len(dict.fromkeys(t.pid for t in shown))
    height = top + (len(shown) + groups) * row_h + 90
    x_of = lambda ts: label_w + (ts - first) / span * bar_w  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="Helvetica, Arial, sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="20" font-size="14">{escape(title)}</text>',
           f'<text x="10" y="38" fill="#555">{len(tracks)} processes over {span / 1000:.3f} ms; '
           f'each bar is one process\'s life, coloured by what it was doing</text>',
           f'<text x="{label_w}" y="{top - 8}" fill="#555">0 ms</text>',
           f'<text x="{label_w + bar_w}" y="{top - 8}" fill="#555" text-anchor="end">{span / 1000:.3f} ms</text>',
           f'<text x="{label_w + bar_w + 10}" y="{top - 8}" fill="#555">blocked, wrote, read</text>']
    y = top
    pid = None
    for t in shown:
        if t.pid != pid:
            pid = t.pid
            out.append(f'<text x="10" y="{y + 13}" font-weight="bold">{escape(os_names.get(pid, f"pid {pid}"))}</text>')
            y += row_h
        end = t.end if t.end is not None else last
        life = max(end - t.begin, 1e-9)
        out.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{escape(t.name[:36])}</text>')
        out.append(f'<rect x="{x_of(t.begin):.2f}" y="{y + 3}" width="{max(x_of(end) - x_of(t.begin), 0.5):.2f}" '
                   f'height="{row_h - 6}" fill="{RUNNING[1]}"/>')
        blocked = 0.0
        for since, until, name in t.slices:
            blocked += until - since
            colour = kind_of(name)[1]
            out.append(f'<rect x="{x_of(since):.2f}" y="{y + 3}" width="{max(x_of(until) - x_of(since), 0.3):.2f}" '
                       f'height="{row_h - 6}" fill="{colour}"><title>{escape(name)}</title></rect>')
        out.append(f'<text x="{label_w + bar_w + 10}" y="{y + 13}">{min(blocked / life, 1.0) * 100:.0f}%, '
                   f'{t.wrote}, {t.read}</text>')
        y += row_h
    if len(tracks) > len(shown):
        out.append(f'<text x="10" y="{y + 13}" fill="#555">... and {len(tracks) - len(shown)} more processes '
                   f'(--rows to show them)</text>')
    y += row_h + 10
    x = 10
    for what, colour in [RUNNING] + [(w, c) for _, w, c in KINDS]:
        out.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 16}" y="{y + 10}">{escape(what)}</text>')
        x += 16 + 7 * len(what) + 14
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace")
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--title", default=None)
    a = ap.parse_args()
    with open(a.trace) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    os_names, tracks, first, last = summarise(events)
    if not tracks:
        print(f"trace_summary: no process in {a.trace}", file=sys.stderr)
        return 1
    with open(a.out, "w") as f:
        f.write(draw(os_names, tracks, first, last, a.rows, a.title or f"csp trace: {a.trace}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
