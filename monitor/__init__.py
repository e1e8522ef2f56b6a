"""xborder: cross-border data-flow compliance monitor (package root; see DESIGN.md for the path of data)."""

import gc
import os
import sys

__version__ = "0.1.0"

# numpy's OpenBLAS starts a busy-waiting thread per core when numpy is imported. xborder does
# no linear algebra, and on a 2-core machine those threads took CPU from the parse threads
# (bench/run.py: 1M Squid lines in 5.9 s with them, 4.5-5.1 s without, 2026-12-03).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _arrow_without_pandas() -> None:
    """Let pyarrow's one-time "is pandas installed?" probe answer no.

    The first time pa.array() is given a Python list, pyarrow imports pandas (0.3-0.5 s) only to
    check whether the list is a pandas object. Nothing on the path of data uses pandas. With the
    probe answered no, pyarrow still imports pandas when it is really needed: to_pandas() and
    from_pandas() import it on demand (monitor.records.as_pandas, the tests).
    """
    if "pandas" in sys.modules:
        return
    sys.meta_path.insert(0, _NoPandas)
    try:
        import pyarrow as pa

        pa.array([None])
    finally:
        sys.meta_path.remove(_NoPandas)


def _arrow_memory_pool() -> None:
    """Arrow allocates through the C library's malloc, unless ARROW_DEFAULT_MEMORY_POOL says otherwise.

    Arrow's default pool (mimalloc) hands freed pages back to the kernel, and each batch then
    faults them in again and the kernel zeroes them: a quarter of all CPU time in `perf` on the
    1M-line bench, even with mimalloc told to wait 10 s. With glibc's malloc the sys time of that
    run fell from 1.6 s to 0.6 s, the wall time by ~10 % and the peak RSS from ~700 to ~500 MiB
    (5M lines: 890 -> 740 MiB); jemalloc was as good in sys time but slower (bench/run.py, 6
    alternating rounds, 2026-12-03).
    """
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


class _NoPandas:
    """A meta path finder under which "import pandas" raises ImportError."""

    @staticmethod
    def find_spec(name: str, *_: object) -> None:
        if name == "pandas":
            raise ImportError("pandas hidden while pyarrow probes for it")


_arrow_memory_pool()
_arrow_without_pandas()


# ------------------------------------------------------------------ garbage collection during start-up

_GC_THRESHOLD = gc.get_threshold()
_starting = False


def starting_up() -> None:
    """Collect garbage rarely until the runtime is loaded (`started`); the CLI calls this first.

    Start-up (imports, config, rules, resolver) makes a few hundred thousand objects that live as
    long as the process and next to no garbage, yet the collector's default threshold ran on it
    hundreds of times, full passes included. Raising the threshold until then took 0.2-0.3 s of
    CPU off the 1M-line bench (bench/run.py, 6 alternating rounds, 2026-12-03). The collector
    still runs, so a command that makes cycles before `started` cannot grow without bound.
    """
    global _starting
    _starting = True
    gc.set_threshold(100_000, *_GC_THRESHOLD[1:])


def started() -> None:
    """The runtime is loaded (or the command is over): garbage is collected as usual again."""
    global _starting
    if _starting:
        _starting = False
        gc.set_threshold(*_GC_THRESHOLD)
