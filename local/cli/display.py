"""Terminal output for the CLI: a progress bar that redraws in place and plain aligned tables."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

BAR_WIDTH = 30


class ProgressBar:
    """`label [#####-----]  42%  detail`, redrawn on one line when the stream is a terminal."""

    def __init__(self, label: str, stream: TextIO = sys.stderr) -> None:
        self._label = label
        self._stream = stream
        self._interactive = stream.isatty()
        self._last = ""

    def update(self, fraction: float, detail: str = "") -> None:
        fraction = min(1.0, max(0.0, fraction))
        filled = round(fraction * BAR_WIDTH)
        line = f"{self._label} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {fraction * 100:3.0f}%  {detail}"
        if line == self._last:
            return
        self._last = line
        if self._interactive:
            self._stream.write("\r\x1b[2K" + line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._interactive and self._last:
            self._stream.write("\n")
            self._stream.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def human_bytes(count: float | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def truncate(text: str, width: int) -> str:
    """`text` cut to `width` characters, the cut marked with an ellipsis."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def fields(rows: Sequence[tuple[str, object]], indent: str = "  ") -> str:
    """Aligned `name  value` lines."""
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"{indent}{name.ljust(width)}  {'-' if value is None else value}".rstrip() for name, value in rows)
