"""Start-up cost of the command line: `sonokit --help` and `sonokit train segment --help` against
`python -c "import torch"`, each a fresh process, side by side in alternating rounds.

Reports, per command, the median (and range) of wall and CPU seconds (user + sys of the child, from
``resource.getrusage(RUSAGE_CHILDREN)``) and peak memory, and the modules a `--help` run imported (torch,
lightning, monai, timm, deepinv must be absent). Target (issue 18): `sonokit --help` under 0.5 s CPU.
Writes ``benchmarks/results/cli_startup.{json,md}``.

    python benchmarks/cli_startup.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sonokit.provenance import commit, machine  # noqa: E402
from sonokit.reports.tables import markdown_table  # noqa: E402

PY = sys.executable
HELP = "import sys; sys.argv = ['sonokit'] + sys.argv[1:]; from sonokit.cli import main; main()"
COMMANDS = {
    "sonokit --help": [PY, "-c", HELP, "--help"],
    "sonokit train segment --help": [PY, "-c", HELP, "train", "segment", "--help"],
    "python -c 'import torch'": [PY, "-c", "import torch"],
}
HEAVY = ("torch", "lightning", "monai", "timm", "deepinv")


def timed(cmd: list[str]) -> dict:
    """Wall and CPU seconds and peak RSS of one child process (its own rusage, from wait4)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "100"})
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed with exit code {p.returncode}")
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024}


def heavy_modules(args: list[str]) -> list[str]:
    code = (HELP.replace("main()", "") + "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main()\n    except SystemExit:\n        pass\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    r = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1].replace("'", '"'))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cli_startup"))
    args = ap.parse_args()
    for cmd in COMMANDS.values():  # warm the page cache
        timed(cmd)
    runs: dict[str, list[dict]] = {k: [] for k in COMMANDS}
    for _ in range(args.rounds):  # alternating rounds: each round runs every command once
        for name, cmd in COMMANDS.items():
            runs[name].append(timed(cmd))
    summary = {}
    for name, rs in runs.items():
        summary[name] = {k: {"median": statistics.median(r[k] for r in rs), "min": min(r[k] for r in rs),
                             "max": max(r[k] for r in rs)} for k in ("wall", "cpu", "maxrss_mb")}
    load = os.getloadavg()[0]  # other work on the machine inflates wall time more than CPU time
    imported = {"sonokit --help": heavy_modules(["--help"]),
                "sonokit train segment --help": heavy_modules(["train", "segment", "--help"])}
    target = summary["sonokit --help"]["cpu"]["median"] < 0.5
    doc = {"benchmark": "cli_startup", "rounds": args.rounds, "commit": commit(), "machine": machine(),
           "load_average_1min_at_end": load, "summary": summary, "heavy_modules_imported": imported, "target_help_cpu_below_0.5s": target,
           "runs": runs}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    rows = [[name, f"{s['wall']['median']:.3f} ({s['wall']['min']:.3f}-{s['wall']['max']:.3f})",
             f"{s['cpu']['median']:.3f} ({s['cpu']['min']:.3f}-{s['cpu']['max']:.3f})", f"{s['maxrss_mb']['median']:.0f}",
             ", ".join(imported.get(name, [])) or ("—" if name in imported else "n/a")]
            for name, s in summary.items()]
    md = ["# CLI start-up\n",
          f"Each command is a fresh Python process; {args.rounds} alternating rounds after one warm-up round; median "
          f"(min-max). CPU = user + sys of the process. Commit {doc['commit']}, {doc['machine']['platform']}, "
          f"{os.cpu_count()} cores, 1-minute load average {load:.1f} at the end (other jobs were running: compare "
          f"CPU time, not wall time). Produced by `python benchmarks/cli_startup.py`.\n",
          markdown_table(["command", "wall s", "CPU s", "peak RSS MB", "heavy modules imported"], rows),
          f"Target `sonokit --help` < 0.5 s CPU: **{'met' if target else 'not met'}** "
          f"({summary['sonokit --help']['cpu']['median']:.3f} s).\n"]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
