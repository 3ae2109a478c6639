"""One progress helper for every training and evaluation loop.

    from arkbench.progress import progress
    with progress(total=max_steps, desc="pretrain bert", unit="step") as bar:
        for step in range(max_steps):
            ...
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
    for batch in progress(loader, desc="eval rte", unit="batch"):   # wraps an iterable
        ...

Where it goes (``ARKBENCH_PROGRESS``; default ``auto``):

* ``auto``: a tqdm bar (rate and ETA) on stderr when stdout is a terminal; otherwise
  (CI, ``dvc repro > log``, a pipe) plain lines on stdout at a bounded rate, so a log
  shows the run is alive without filling up with bar redraws;
* ``bar`` / ``lines``: force one of the two; ``off``: nothing.

Line mode prints at most one line every ``ARKBENCH_PROGRESS_INTERVAL`` seconds
(default 30) for the whole process (nested bars share the clock), e.g.

    [progress] finetune rte seed 0: 120/500 step (24%), 3.21 step/s, ETA 1m58s, loss=0.612

and a closing line for each bar that printed at least one line, so a log says when a
long loop ended. ``rate = n / elapsed``; ``ETA = (total - n) / rate``.
Under torchrun only rank 0 reports.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable, Iterator

DEFAULT_INTERVAL = 30.0
_last_line = [time.monotonic()]   # process-wide clock of the last printed line


def mode() -> str:
    """'bar' | 'lines' | 'off' for this process (see the module doc)."""
    m = os.environ.get("ARKBENCH_PROGRESS", "auto").strip().lower() or "auto"
    if m not in ("auto", "bar", "lines", "off"):
        raise ValueError(f"ARKBENCH_PROGRESS={m!r}: allowed auto, bar, lines, off")
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return "off"
    if m == "auto":
        try:
            tty = sys.stdout.isatty()
        except (AttributeError, ValueError):
            tty = False
        return "bar" if tty else "lines"
    return m


def interval() -> float:
    raw = os.environ.get("ARKBENCH_PROGRESS_INTERVAL", "")
    try:
        v = float(raw) if raw.strip() else DEFAULT_INTERVAL
    except ValueError:
        raise ValueError(f"ARKBENCH_PROGRESS_INTERVAL={raw!r}: expected seconds (a number)") from None
    if v < 0:
        raise ValueError(f"ARKBENCH_PROGRESS_INTERVAL={raw!r}: must be >= 0")
    return v


def _fmt_time(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


class Progress:
    """The common interface: update / set_postfix / close, iteration, context manager."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0):
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self.start_n = initial
        self.postfix: dict[str, Any] = {}

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("progress(...) without an iterable: call update() instead")
        try:
            for x in self.iterable:
                yield x
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, refresh: bool = False, **kw: Any) -> None:
        self.postfix = kw

    def close(self) -> None: ...


class _Bar(Progress):
    """tqdm on stderr (rate, ETA, postfix)."""

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        from tqdm.auto import tqdm

        self._bar = tqdm(total=self.total, initial=self.n, desc=self.desc, unit=self.unit, dynamic_ncols=True,
                         mininterval=1.0, file=sys.stderr, leave=False)

    def update(self, n: int = 1) -> None:
        super().update(n)
        self._bar.update(n)

    def set_postfix(self, refresh: bool = False, **kw: Any) -> None:
        super().set_postfix(**kw)
        self._bar.set_postfix(refresh=refresh, **kw)

    def close(self) -> None:
        self._bar.close()


class _Lines(Progress):
    """Plain lines on stdout, at most one per `interval` seconds process-wide."""

    def __init__(self, *a: Any, every: float | None = None, **kw: Any):
        super().__init__(*a, **kw)
        self.every = interval() if every is None else every
        self.t0 = time.monotonic()
        self.printed = False
        self.closed = False

    def line(self, done: bool = False) -> str:
        dt = max(time.monotonic() - self.t0, 1e-9)
        rate = (self.n - self.start_n) / dt
        parts = [f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts.append(f"{rate:.3g} {self.unit}/s")
        if done:
            parts.append(f"done in {_fmt_time(dt)}")
        elif self.total and rate > 0:
            parts.append(f"ETA {_fmt_time((self.total - self.n) / rate)}")
        parts += [f"{k}={v}" for k, v in self.postfix.items()]
        return f"[progress] {self.desc}: " + ", ".join(parts)

    def _emit(self, done: bool = False) -> None:
        print(self.line(done), file=sys.stdout, flush=True)
        _last_line[0] = time.monotonic()
        self.printed = True

    def update(self, n: int = 1) -> None:
        super().update(n)
        if time.monotonic() - _last_line[0] >= self.every:
            self._emit()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.printed:
                self._emit(done=True)


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, enabled: bool = True) -> Progress:
    """A progress reporter for one loop; see the module doc. `enabled=False` gives a silent one."""
    m = mode() if enabled else "off"
    cls = {"bar": _Bar, "lines": _Lines}.get(m, Progress)
    return cls(iterable, total=total, desc=desc, unit=unit, initial=initial)
