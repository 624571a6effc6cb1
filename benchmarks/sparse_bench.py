#!/usr/bin/env python
"""Speed of `midl.sparse.SparseMIDLayer` against `nn.Linear` (issue 15), measured in one run.

1. Evaluation latency for every (d, batch, keep ratio, rank, kernel): `midl.sparse.latency_sweep`, which times each
   sparse layer (each with its own copy of the weights) and `nn.Linear(d, d)` round robin (`midl.metrics.time_round_robin`) and reports medians, IQRs, the ratio to
   `nn.Linear` and the bytes-read bound k/d + 3 r/d (W's k rows plus D, U_alpha, U_c whole, over Linear's d^2).
2. One training step (forward, backward, Adam: fused as in `midl.train`, and PyTorch's default) at --train-d,
   --train-batch: `midl.sparse.train_step_ratio` (medians over --train-instances fresh sets of blocks), as ratios to a Linear + ReLU + Dropout block, for SparseMIDLayer (as it runs, and forced to gather) and the paper's §4.4 MIDLayer.

    PYTHONPATH=. python benchmarks/sparse_bench.py --dims 1024 4096 --batches 1 8 64 \\
        --keeps 0.05 0.1 0.25 0.5 1.0 --repeats 100 --threads 1 --kernels native torch compile
"""
import argparse, platform
from pathlib import Path
import torch
import midl
from midl.experiment import atomic_write
from midl.sparse import latency_sweep, break_even, train_step_ratio, DEFAULT_RANK, KERNELS

TARGETS = dict(latency=(4096, 1, 0.25, 0.35), train=1.25)          # issue 15: (d, batch, keep, ratio) and train-step ratio

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--dims', type=int, nargs='+', default=[1024, 4096], help='layer widths d (d -> d)')
    p.add_argument('--batches', type=int, nargs='+', default=[1, 8, 64])
    p.add_argument('--keeps', type=float, nargs='+', default=[0.05, 0.1, 0.25, 0.5, 1.0], help='keep ratios k/d')
    p.add_argument('--ranks', type=int, nargs='+', default=[DEFAULT_RANK, 128], help=f'ranks r of the sparse layers ({DEFAULT_RANK}: the default)')
    p.add_argument('--repeats', type=int, default=100, help='timed rounds (each times every layer once)')
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--threads', type=int, default=1, help='torch intra-op threads')
    p.add_argument('--kernels', nargs='+', default=['native', 'torch'], choices=KERNELS, help="SparseMIDLayer kernels timed (compile: torch.compile'd gather)")
    p.add_argument('--train-d', type=int, default=1024)
    p.add_argument('--train-batch', type=int, default=64)
    p.add_argument('--train-keep', type=float, default=0.25)
    p.add_argument('--train-repeats', type=int, default=30, help='timed rounds per instance')
    p.add_argument('--train-instances', type=int, default=5, help='fresh blocks at other addresses, this many times (medians over them)')
    p.add_argument('--csv', default=None, help='also write the latency table to this CSV file')
    p.add_argument('--out', default=None, help='also write this report to this Markdown file (atomically)')
    return p.parse_args(argv)

def main(argv=None):
    a = parse(argv)
    lines = []
    def say(*xs): lines.append(' '.join(map(str, xs))); print(*xs, flush=True)
    say(f"midl {midl.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{a.threads} thread(s), {a.repeats} rounds")
    t = latency_sweep(a.dims, a.batches, a.keeps, a.ranks, repeats=a.repeats, warmup=a.warmup, threads=a.threads,
                      kernels=a.kernels)
    if a.csv: t.to_csv(a.csv, index=False)
    cols = ['d', 'batch', 'keep', 'rank', 'kernel', 'path', 'sparse_ms', 'sparse_iqr_ms', 'linear_ms', 'linear_iqr_ms',
            'ratio', 'bound']
    say('\n## Evaluation latency: SparseMIDLayer / nn.Linear(d, d) (medians; IQR in ms)\n')
    say(t[cols].to_markdown(index=False, floatfmt='.3f'))
    say('\n## Largest keep ratio at which SparseMIDLayer beat nn.Linear (NaN: none)\n')
    say(break_even(t).to_markdown(floatfmt='.3f'))
    d, b, keep, goal = TARGETS['latency']
    hit = t[(t.d == d) & (t.batch == b) & (t.keep == keep)]
    for _, r in hit.iterrows():
        say(f"target: d={d}, batch {b}, keep {keep:.0%}, rank {r['rank']}, {r.kernel}: "
              f"{r.ratio:.2f}x nn.Linear (target <= {goal}; bound {r.bound:.3f})")
    say(f'\n## Training step at d={a.train_d}, batch {a.train_batch}, keep {a.train_keep:.0%}: ratio to Linear + ReLU + Dropout\n')
    for r in a.ranks:
        for fused in (True, False):
            s = train_step_ratio(a.train_d, a.train_batch, a.train_keep, rank=r, repeats=a.train_repeats, threads=a.threads, fused=fused,
                                 instances=a.train_instances)
            adam = 'fused Adam, as midl.train' if fused else "PyTorch's default (foreach) Adam"
            say(f'rank {r}, {adam}:\n')
            say(s[['median_ms', 'iqr_ms', 'ratio', 'ratio_min', 'ratio_max']].to_markdown(floatfmt='.3f'))
            sp = s.loc['SparseMIDLayer']
            say(f"\ntarget: SparseMIDLayer, rank {r}, {adam}: {sp.ratio:.2f}x (median of {a.train_instances} instances, "
                f"{sp.ratio_min:.2f}-{sp.ratio_max:.2f}; target <= {TARGETS['train']})\n")
    if a.out: atomic_write(a.out, lambda tmp: Path(tmp).write_text('\n'.join(lines) + '\n'))   # no half-written report

if __name__ == '__main__': main()
