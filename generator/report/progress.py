"""Progress lines for long steps of the main job and of ``gen2hal report``.

::

    [3/8] booting build/win7sp1-amd64/gen2/hal.dll on gen2 ... 4.2 s  bugcheck 0x79

Plain text, one line a step (the label first, the elapsed wall time and a short result when the step ends), so it
reads the same in a terminal, a CI log or a file.  Wall time is shown, never recorded in any output file.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO


class Step:
    """A running step; ``result(text)`` sets what is printed after the elapsed time."""

    def __init__(self) -> None:
        self.text = ""

    def result(self, text: str) -> None:
        """Say how the step ended (e.g. the verdict)."""
        self.text = text


class Progress:
    """Numbered progress lines: ``with progress.step("booting X on gen2") as s: ...; s.result("booted")``.

    ``total`` is the number of steps expected (``None``: unknown, steps are shown as ``[3]``).  ``stream`` defaults
    to standard output, read when each line is written (so pytest's capture and SCons's redirection see it).
    """

    def __init__(self, total: int | None = None, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.done = 0
        self._stream = stream
        self._clock = clock

    @property
    def stream(self) -> TextIO:
        """Where lines go."""
        return self._stream if self._stream is not None else sys.stdout

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()  # the label must be visible while the step runs

    @contextmanager
    def step(self, what: str) -> Iterator[Step]:
        """Print ``[n/total] what ...``; when the block ends, the elapsed seconds and the step's result."""
        self.done += 1
        number = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        self._write(f"[{number}] {what} ...")
        started = self._clock()
        state = Step()
        try:
            yield state
        except BaseException:
            self._write(f" failed after {self._clock() - started:.1f} s\n")
            raise
        self._write(f" {self._clock() - started:.1f} s" + (f"  {state.text}" if state.text else "") + "\n")
