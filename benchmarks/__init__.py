"""thunderbot's benchmarks: each figure is the bot measured against a baseline in the same run.

`make bench` (or `python -m benchmarks [--rounds 3] [--seconds 5] [--concurrency 32]
[--only ingest,ack] [--no-write]`) starts the bot as production runs it (`thunderbot serve`, in
its own process, against the fake Slack and the ThunderPhone sandbox on loopback), starts each
baseline in its own process, and drives both with the same load generator, a third process
(`benchmarks.loadgen`). Rounds alternate between the bot and its baseline so that a noisy moment
of the machine hits both; each figure is the median of the rounds. One line per figure is
printed, with its target and PASS or FAIL; the run is appended to docs/benchmarks.md with a
description of the machine; the exit status is 1 when any figure missed its target.

Adding figures: a module of this package that defines

    async def figures(options: benchmarks.common.Options) -> list[benchmarks.common.Figure]

is a figure module; `python -m benchmarks` finds it by itself, runs it in name order, and
`--only NAME` (the module's name, like `ingest`) picks it. A Figure carries `name`, `value`,
`unit` ("x" for a ratio, else "ms", "s", ...), `target` (None: shown for information),
`comparison` (">=", "<=", "<", ">": how value meets target), `against` (the baseline a ratio is
against), `detail` (the raw numbers behind it) and `passed` (computed from the comparison unless
given). `benchmarks.common` has the rest a module needs: `run_loadgen` (requests built by
`benchmarks.payloads`), `ServerProcess` (a baseline of `benchmarks.baselines` on a free port),
`alternate` (rounds turning the order), `ratios`, `median`, `ratio_detail`; and
`benchmarks.served.served_bot` starts the bot with its fakes on a fresh database.

Tests never assert on wall-clock time: timing lives here.
"""
