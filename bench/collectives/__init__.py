"""`zhisuan collective`: an nccl-tests-style benchmark of collectives over torch.distributed.

ops        the collectives as a table, one entry each: bus factor, buffers, expected result, call
sizes      8, 64K, 128M, 8G and the size sweep
check      exactly representable check data; counting wrong elements against an entry's result
driver     the per-size loop every rank runs: warm-up, timing, check, gather to rank 0
summary    rank 0: summary over ranks, the printed table, the JSON Lines results, the exit code
rankenv    which rank this process is: torchrun / Slurm / mpirun / --nproc environment variables
rankrun    a rank's life: join the process group, run the plan, leave together
launch     --nproc: spawn local ranks (and run_function, the tests' spawner)
watchdog   spawned ranks' heartbeats and steps, and the parent that names a dead or hung rank
worker     the entry point of a rank spawned by --nproc
netmodel   the alpha-beta model: fit a measured sweep, predict ring / tree / hierarchical at scale
command    `zhisuan collective` (add_parser, run); __main__: the same as python -m zhisuan.bench.collectives
model_command  `zhisuan collective-model SWEEP.jsonl`: the model of each sweep in a results file
"""
