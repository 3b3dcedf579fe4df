"""Helpers shared by the benchmark scripts: machine description, atomic result files."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path

#: where result files go; LABELSKY_BENCH_RESULTS redirects them (``gpu_suite.sh --smoke`` writes to a scratch folder)
RESULTS = Path(os.environ.get("LABELSKY_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def command_line() -> str:
    """The command line that started this process, as it could be typed again."""
    return shlex.join([sys.executable or "python", *sys.argv])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    """Short description: usable CPU count, CPU model, torch / galsim versions."""
    try:
        n_cpu = len(os.sched_getaffinity(0))
    except AttributeError:
        n_cpu = os.cpu_count()
    parts = [f"{n_cpu} CPU ({cpu_model()})", f"python {platform.python_version()}"]
    try:
        import torch

        parts.append(f"torch {torch.__version__}")
    except ImportError:
        pass
    try:
        import galsim

        parts.append(f"galsim {galsim.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def code_version() -> dict:
    """Commit of the working tree and whether src/ differs from it (read-only git queries)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "src_modified": None}
    return {"commit": commit or "unknown", "src_modified": bool(dirty)}


def stamp_runs(runs: list[dict], work_dir: Path, name: str = "benchmark_provenance.json") -> str | None:
    """Record which commit and command trained each run of a benchmark that reuses finished runs.

    ``runs``: dicts with ``run_dir`` (relative to ``work_dir``) and ``trained_now``. A run trained by this
    invocation gets ``<run_dir>/<name>`` with this commit and command line; every run's record is added to its
    dict as ``trained_by`` (None where the run has none). Returns why the runs cannot be traced to this commit
    (reused runs trained at another commit, or with no record), or None."""
    stamp = {"commit": code_version()["commit"], "command": command_line()}
    for r in runs:
        f = Path(work_dir) / r["run_dir"] / name
        if r.get("trained_now"):
            _atomic_write_text(f, json.dumps(stamp) + "\n")
        r["trained_by"] = json.loads(f.read_text()) if f.exists() else None
    other = sorted({(r["trained_by"] or {}).get("commit", "no record") for r in runs} - {stamp["commit"]})
    if other:
        return (f"{sum((r['trained_by'] or {}).get('commit') != stamp['commit'] for r in runs)} of {len(runs)} "
                f"reused runs were trained at another commit or have no record ({', '.join(other)}); "
                "use a fresh --work-dir")
    return None


#: set to 1 to write result files from a modified tree anyway (they record that they were)
ALLOW_MODIFIED = "LABELSKY_BENCH_ALLOW_MODIFIED"


def provenance_problem(code: dict) -> str | None:
    """Why a result with this ``code`` record (``{"at_start": ..., "at_end": ...}``) cannot be traced to a
    commit, or ``None``: a commit recorded at start and end, the same, with ``src/`` unmodified at both."""
    start, end = (code or {}).get("at_start") or {}, (code or {}).get("at_end") or {}
    for when, c in (("start", start), ("end", end)):
        if not c.get("commit") or c.get("commit") == "unknown":
            return f"no commit recorded at its {when}"
        if c.get("src_modified") is not False:
            return f"src/ was modified at its {when} (or could not be checked)"
    if start["commit"] != end["commit"]:
        return f"the commit changed while it ran ({start['commit'][:7]} -> {end['commit'][:7]})"
    return None


def refuse_modified(code: dict) -> None:
    """Stop (exit 2) when ``code`` has a provenance problem, unless ``LABELSKY_BENCH_ALLOW_MODIFIED=1``."""
    why = provenance_problem(code)
    if why and os.environ.get(ALLOW_MODIFIED) != "1":
        sys.stderr.write(f"benchmark refused: {why}; commit src/ and run it from a clean tree (a git worktree), "
                         f"or set {ALLOW_MODIFIED}=1 to record a result that says so\n")
        raise SystemExit(2)


_CODE_AT_START = code_version()  # the scripts import this module first thing
if Path(sys.argv[0]).resolve().parent == Path(__file__).resolve().parent:  # a benchmark script: refuse early
    refuse_modified({"at_start": _CODE_AT_START, "at_end": _CODE_AT_START})


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_results(name: str, metrics: dict, markdown: str, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.json`` and ``<name>.md`` atomically; return their paths."""
    out_dir = Path(out_dir) if out_dir else RESULTS
    code = {"at_start": _CODE_AT_START, "at_end": code_version()}
    refuse_modified(code)
    record = {
        "command": command_line(),
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "machine": machine(),
        "code": code,
        "metrics": metrics,
    }
    jpath, mpath = out_dir / f"{name}.json", out_dir / f"{name}.md"
    _atomic_write_text(jpath, json.dumps(record, indent=2, sort_keys=False, default=float) + "\n")
    head = (f"<!-- written by benchmarks/{Path(sys.argv[0]).name}; do not edit -->\n\n"
            f"Command: `{record['command']}`  \nDate: {record['date']}  \nMachine: {record['machine']}\n\n")
    _atomic_write_text(mpath, head + markdown.rstrip() + "\n")
    return jpath, mpath


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CPU contention
def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [float(v) for v in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)  # idle + iowait
    return sum(vals) - idle, sum(vals)


def cpu_busy(interval: float = 1.0) -> float:
    """Fraction of all CPUs busy during the next ``interval`` seconds (0..1)."""
    import time

    b0, t0 = _cpu_times()
    time.sleep(interval)
    b1, t1 = _cpu_times()
    return (b1 - b0) / max(t1 - t0, 1e-9)


class CpuMonitor:
    """CPU busy fraction over a measured block, to compare with what the benchmark itself used.

    ``own_cpu_s`` (this process and its waited-for children) vs ``busy_cpu_s``
    (all processes): their difference is CPU time taken by other programs
    during the measurement.
    """

    def __enter__(self):
        import resource
        import time

        self._b0, self._t0 = _cpu_times()
        self._w0 = time.perf_counter()
        self._r0 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return self

    def __exit__(self, *exc):
        import resource
        import time

        b1, t1 = _cpu_times()
        self.wall_s = time.perf_counter() - self._w0
        tick = os.sysconf("SC_CLK_TCK")
        r1 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        self.own_cpu_s = sum((b.ru_utime + b.ru_stime) - (a.ru_utime + a.ru_stime) for a, b in zip(self._r0, r1))
        self.busy_cpu_s = (b1 - self._b0) / tick
        self.other_cpu_s = max(self.busy_cpu_s - self.own_cpu_s, 0.0)
        return False

    def as_dict(self) -> dict:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return {"wall_s": self.wall_s, "own_cpu_s": self.own_cpu_s, "all_cpu_s": self.busy_cpu_s,
                "other_processes_cpu_s": self.other_cpu_s,
                "other_processes_cpu_frac": self.other_cpu_s / max(self.wall_s * n, 1e-9)}


def wait_for_idle(max_wait_s: float, threshold: float = 0.15, interval: float = 2.0) -> dict:
    """Wait (up to ``max_wait_s``) until the CPUs are less than ``threshold`` busy; report what was seen."""
    import sys
    import time

    t0 = time.perf_counter()
    busy = cpu_busy(interval)
    while busy > threshold and time.perf_counter() - t0 < max_wait_s:
        print(f"  CPUs {busy:.0%} busy (other programs); waiting ...", file=sys.stderr, flush=True)
        busy = cpu_busy(interval)
    return {"busy_before": busy, "waited_s": time.perf_counter() - t0}
