"""A progress bar on the main process: tqdm when installed, else a text line every N steps."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

__all__ = ["Progress"]

try:
    from tqdm import tqdm as _tqdm
except ImportError:  # tqdm is optional: it comes with detectron2 / fvcore, not with torch
    _tqdm = None


class Progress:
    """Iterate over ``iterable`` showing progress; call :meth:`show` with the latest numbers.

    Args:
        iterable: the batches.
        total: number of batches.
        description: label, e.g. ``"epoch 3/600"``.
        enabled: False on every process but the main one (and with ``--no-progress``).
        bar: use a tqdm bar when tqdm is installed; otherwise (or when False) print a line
            every ``print_every`` steps.
        print_every: steps between text lines.
    """

    def __init__(
        self,
        iterable: Iterable,
        total: int,
        description: str,
        enabled: bool = True,
        bar: bool = True,
        print_every: int = 100,
    ) -> None:
        self.iterable, self.total, self.description = iterable, total, description
        self.enabled, self.print_every = enabled, max(1, print_every)
        self._bar = None
        if enabled and bar and _tqdm is not None:
            self._bar = _tqdm(total=total, desc=description, dynamic_ncols=True, leave=False)
        self._step = 0
        self._start = time.time()

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self._step += 1
            if self._bar is not None:
                self._bar.update(1)
        if self._bar is not None:
            self._bar.close()

    def wants_numbers(self) -> bool:
        """True when :meth:`show` would display anything at this step (saves device syncs)."""
        if not self.enabled:
            return False
        if self._bar is not None:
            return self._step % 10 == 0 or self._step + 1 == self.total
        return (self._step + 1) % self.print_every == 0 or self._step + 1 == self.total

    def show(self, numbers: dict[str, float]) -> None:
        """Display the current numbers (call after processing the current step)."""
        if not self.enabled:
            return
        text = " ".join(f"{key} {value:.4g}" for key, value in numbers.items())
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
        else:
            elapsed = time.time() - self._start
            print(
                f"{self.description} [{self._step + 1}/{self.total}] {text} ({elapsed:.0f}s)",
                file=sys.stdout,
                flush=True,
            )
