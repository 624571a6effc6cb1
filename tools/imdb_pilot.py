"""The IMDB recipe pilot declared in results/full/pilot/README.md: three one-option changes to the seed-0 dense run.

Runs them one after another on one thread (the re-run sweep has the other core) and prints only validation accuracy."""
import sys, dataclasses, torch
from midl.reproduce import plan_specs
from midl.experiment import sweep

KEY = 'table8-imdb-dense-s0-0aa3957309'                          # the current recipe's seed-0 dense run
CHANGES = dict(P1=dict(model_config=dict(embed_dropout=0.3)), P2=dict(model_config=dict(readout='max')),
               P3=dict(data_config=dict(cut='tail')))

def pilot_specs():
    base = next(s for s in plan_specs('full', ['10_table8.ipynb']) if s.key == KEY)
    return {name: dataclasses.replace(base, tag='imdb_pilot', **{f: {**getattr(base, f), **v} for f, v in ch.items()})
            for name, ch in CHANGES.items()}

if __name__ == '__main__':
    torch.set_num_threads(1)
    out = sys.argv[1] if len(sys.argv) > 1 else 'results/full/pilot/runs'
    for name, s in pilot_specs().items():
        rec, = sweep([s], out, workers=1, strict=True)
        best = max(h['valid_acc'] for h in rec['history'] if 'valid_acc' in h)
        print(f'{name} {s.key}: best validation accuracy {best:.4f}', flush=True)
