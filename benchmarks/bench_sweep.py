"""Batch-size sweep of throughput.py: one fresh process per batch size, so
that peak memory is per size and an out-of-memory error ends one row only."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import bench_data


def run_sweep(args, argv, script):
    """Each batch size in a fresh process: clean peaks, and an OOM ends one row."""
    sizes = [int(s) for s in args.sweep.split(",")]
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in (
            "--sweep",
            "--batch-size",
            "--json",
            "--data",
            "--data-tar",
            "--replicate",
            "--max-images",
            "--tar-subdir",
        ):
            skip = True
        elif not arg.startswith(
            (
                "--sweep=",
                "--batch-size=",
                "--json=",
                "--data=",
                "--data-tar=",
                "--replicate=",
                "--max-images=",
                "--tar-subdir=",
            )
        ):
            rest.append(arg)
    workdir = None
    if set("bcd") & set(args.parts):
        folder, count, workdir = bench_data.prepare(
            args.data, args.data_tar, args.tar_subdir, args.max_images, args.replicate
        )
        rest += ["--data", folder]
    try:
        rows = _sweep_rows(sizes, rest, script)
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    _print_table(rows)
    return {"sweep": [{"batch_size": s, **r} for s, r in rows]}


def _sweep_rows(sizes, rest, script):
    rows = []
    for size in sizes:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [
                sys.executable,
                os.path.abspath(script),
                *rest,
                "--batch-size",
                str(size),
                "--json",
                out.name,
            ]
            print(f"--- B={size}: {' '.join(cmd[1:])}", flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            print(proc.stdout, end="", flush=True)
            try:
                with open(out.name) as f:
                    rows.append((size, json.load(f)))
            except (OSError, ValueError):
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                rows.append((size, {"error": f"exit {proc.returncode}: {tail[:160]}"}))
    return rows


def _print_table(rows):
    print(
        "\n   B |   (a) img/s |   (b) img/s |   (c) img/s |   (d) img/s | host RSS MiB | device MiB"
    )
    for size, r in rows:
        if "error" in r:
            print(f"{size:4d} | failed: {r['error']}")
            continue

        def get(part, r=r):
            value = r.get(part, {}).get("images_per_s")
            return f"{value:11.1f}" if value else f"{'-':>11}"

        mem = r["memory"]
        dev = "-" if mem["peak_device_mb"] is None else f"{mem['peak_device_mb']:.0f}"
        print(
            f"{size:4d} | {get('a')} | {get('b')} | {get('c')} | {get('d')} | {mem['peak_host_rss_mb']:12.0f} | {dev:>10}"
        )
