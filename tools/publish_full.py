"""Publish the finished paper-regime re-run (issue 26): `results/full` -> `results/small`, `results/paper` -> `results/full`,
then execute every experiment notebook in place on the records (nothing is trained when every planned run has one).

    MIDL_DATA=$PWD/.data .venv/bin/python tools/publish_full.py            # refuses while planned runs are missing
    MIDL_DATA=$PWD/.data .venv/bin/python tools/publish_full.py --dry-run  # what it would do

Run it from the repository root on a quiet machine (10_table8 re-times every latency), then commit."""
import sys, json, shutil, subprocess
from pathlib import Path
import papermill as pm
from midl.reproduce import EXPERIMENT_NOTEBOOKS

PAPER, FULL, SMALL = Path('results/paper'), Path('results/full'), Path('results/small')
COMMON = dict(scale='full', workers=2, results_dir='../results/full/runs', out_dir='../results/full', run_missing=False,
              models_dir='../_out/full/models', superseded_dir='../results/full/superseded', pilot_dir='../results/full/pilot',
              readme='../README.md', reruns_dir='../results/full/reruns')

def missing_runs(base=PAPER) -> list:
    "Keys the plan keeps that have no record yet."
    kept = json.loads((base/'plan.json').read_text())['kept']
    return [k for k in kept if not (base/'runs'/f'{k}.json').exists()]

def params_of(nb: Path) -> dict:
    "Those of `COMMON` that `nb` declares in its parameters cell."
    declared = pm.inspect_notebook(str(nb))
    return {k: v for k, v in COMMON.items() if k in declared}

def main(dry=False):
    base = PAPER if PAPER.exists() else FULL                       # a second call, after the move, executes again
    if (todo := missing_runs(base)):
        sys.exit(f'{len(todo)} planned runs have no record yet (first: {todo[0]}); finish the sweep '
                 "(full_rerun('results/paper/runs', ...)) before publishing")
    moves = [(FULL, SMALL), (PAPER, FULL)] if PAPER.exists() else []
    for src, dst in moves:
        print(f'git mv {src} {dst}')
        if not dry: subprocess.run(['git', 'mv', str(src), str(dst)], check=True)
    if not dry and moves and Path('_out/paper/models').exists():     # the sweep's weights, where the notebooks look for them
        if Path('_out/full/models').exists(): shutil.move('_out/full/models', '_out/small-models')
        shutil.move('_out/paper/models', '_out/full/models')
    for name in EXPERIMENT_NOTEBOOKS:
        nb = Path('nbs')/name
        p = params_of(nb)
        print(f'papermill -k python3 {nb} {nb} ' + ' '.join(f'-p {k} {v}' for k, v in p.items()), flush=True)
        if not dry: pm.execute_notebook(str(nb), str(nb), parameters=p, kernel_name='python3', cwd='nbs', progress_bar=False)
    if not dry: subprocess.run(['.venv/bin/nbdev_clean'], check=True)

if __name__ == '__main__': main('--dry-run' in sys.argv)
