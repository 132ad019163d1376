"""The GPU session's one call: everything the lent GPU machine should run, in one command that fits.

    python -m zhisuan.bench.dev.devicecheck --plan            # the stages, their caps, the total
    python -m zhisuan.bench.dev.devicecheck --print-command   # what to paste into the device tool
    python -m zhisuan.bench.dev.devicecheck --out DIR         # run it (on a CPU: the dry run)

plan.py (stages, caps, the command), orchestrate.py (runs them), supervise.py (one stage under its
deadline), and one module per stage: probe, build, pytest_stream (test outcomes as they come),
benchmarks (with targets.py), pack; files.py names what comes back, summary.py writes summary.md.
"""
