"""A tqdm progress bar on stderr driven by ``progress(done, total)`` callbacks, for the CLI."""

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(desc: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done, total)`` callback that moves a tqdm bar to ``done`` of ``total``."""
    with tqdm(desc=desc, unit=unit, file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress
