#!/usr/bin/env python
"""Training-speed switches on the machine it runs on: bf16 / fp32, flush-to-zero on / off, compiled / eager, channels_last / NCHW.

For each paper-sized backbone (`midl.models.PAPER_BACKBONES`: the MNIST MLP, the CIFAR-10 CNN, the IMDB LSTM) with its
dense baseline head, one training step (forward, cross-entropy, backward, Adam; batch 64) under each setting is timed
in turns with the reference (fp32, eager, NCHW) by `midl.speed.round_robin`, all in one run, and each ratio is
printed: below 1 the switch helps. Flush-to-zero only matters when denormal numbers occur, which happens late in training
(saturated LSTM gates); a fresh model has none, so the FTZ ratio is also measured with denormal inputs (the embedding or
first layer scaled by 1e-39, a stand-in for that state) and labelled so. Then it prints what `midl.speed` chooses
here for each backbone (precision by the hardware, layout and compilation by its own measurement).

    python benchmarks/train_speed.py --out benchmarks/results/train_speed.md
"""
import argparse, copy, sys, time
import torch
from midl.files import atomic_write
from midl.models import build_model, paper_backbone, PAPER_DATA
from midl.speed import stepper, round_robin, flush_denormal, machine_facts, choose_precision, native_bf16, measured_choices
import tempfile

def models():
    "name -> (model, batch x, batch y) for the paper-sized backbones with a dense (dropout 0.5) head."
    T = PAPER_DATA['imdb']['max_len']
    torch.manual_seed(0)
    return {
        'MNIST MLP': (build_model((1, 28, 28), 'dense', n_classes=10, p=0.5, **paper_backbone('mnist')), torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))),
        'CIFAR-10 CNN': (build_model((3, 32, 32), 'dense', n_classes=10, p=0.5, **paper_backbone('cifar10')), torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))),
        'IMDB LSTM': (build_model(None, 'dense', input_shape=(T,), n_classes=2, kind='text', vocab_size=20000, p=0.5, **paper_backbone('imdb')),
                      torch.randint(1, 20000, (64, T)), torch.randint(0, 2, (64,))),
    }

def denormal_copy(m):
    "A copy whose first weight is scaled to ~1e-39 (float32 denormals downstream)."
    m = copy.deepcopy(m)
    with torch.no_grad(): next(m.parameters()).mul_(1e-39 / next(m.parameters()).abs().max())
    return m

def with_ftz(step, on):
    "`step` run with flush-to-zero `on` (set around each call, so two variants can alternate)."
    def f():
        with flush_denormal(on): step()
    return f

def ratio(a, b, steps, warmup=2) -> float:
    "Median step time of `a` / that of `b`, the two timed in turns (round robin) so that load changes hit both."
    t = round_robin(dict(a=a, b=b), steps, warmup)
    return t['a'] / t['b']

def attempt(f):
    "f(), or 'fails: ...' when the setting cannot run here (e.g. oneDNN has no bf16 LSTM on a CPU without native bf16)."
    try: return f()
    except RuntimeError as e: return 'fails: ' + str(e).split('.')[0][:80]

def rows(steps:int, skip_bf16:bool):
    out = []
    for name, (m, x, y) in models().items():
        print(f'{name}: timing', file=sys.stderr, flush=True)
        ref = lambda: stepper(m, x, y)
        r = dict(model=name, fp32_eager_ms=round_robin(dict(a=ref()), steps)['a'] * 1e3)
        if not skip_bf16: r['bf16/fp32'] = attempt(lambda: ratio(stepper(m, x, y, 'bf16'), ref(), max(2, steps // 3), 1))
        r['ftz on/off'] = ratio(with_ftz(ref(), True), with_ftz(ref(), False), steps)
        d = denormal_copy(m)
        r['ftz on/off, denormal inputs'] = ratio(with_ftz(stepper(d, x, y), True), with_ftz(stepper(d, x, y), False), steps)
        r['compiled/eager'] = ratio(stepper(m, x, y, compiled=True), ref(), steps, 3)
        if x.ndim == 4: r['channels_last/NCHW'] = ratio(stepper(m, x, y, channels_last=True), ref(), steps)
        with tempfile.TemporaryDirectory() as root:
            c = measured_choices(m, x, y, total_steps=10_000, precision=choose_precision('auto'), root=root, steps=steps)
        r['midl.speed chooses'] = f"{choose_precision('auto')}, compile={c['compile']}, channels_last={c['channels_last']}"
        out.append(r)
    return out

def report(rs, steps, facts) -> str:
    cols = list(dict.fromkeys(k for r in rs for k in r))
    fmt = lambda v: f'{v:.2f}' if isinstance(v, float) else str(v)
    lines = ['# Training-speed switches, measured side by side', '',
             f"CPU: {facts['cpu_model']}; speed flags: {', '.join(facts['cpu_flags']) or 'none'}; threads: {facts['threads']}; "
             f"native bf16: {native_bf16()}; torch {torch.__version__}; batch 64, median of {steps} steps each.", '',
             'Ratios are time with the switch / time without it: below 1 the switch helps.', '',
             '| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    lines += ['| ' + ' | '.join(fmt(r.get(c, '')) for c in cols) + ' |' for r in rs]
    return '\n'.join(lines) + '\n'

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--steps', type=int, default=6, help='timed steps per setting (median)')
    p.add_argument('--threads', type=int, default=0, help="torch threads (0: PyTorch's default)")
    p.add_argument('--skip-bf16', action='store_true', help='skip bf16 (very slow on CPUs without native bf16)')
    p.add_argument('--out', default=None, help='write the report to this Markdown file (atomically)')
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    text = report(rows(a.steps, a.skip_bf16), a.steps, machine_facts())
    print(text)
    if a.out: atomic_write(a.out, lambda tmp: open(tmp, 'w').write(text))
