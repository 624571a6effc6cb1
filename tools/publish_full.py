"""Publish the finished paper-regime re-run (issue 26): `results/full` -> `results/small`, `results/paper` -> `results/full`,
then execute every experiment notebook in place on the records (nothing is trained when every planned run has one).

    MIDL_DATA=$PWD/.data .venv/bin/python tools/publish_full.py            # refuses while planned runs are missing
    MIDL_DATA=$PWD/.data .venv/bin/python tools/publish_full.py --dry-run  # what it would do
    MIDL_DATA=$PWD/.data .venv/bin/python tools/publish_full.py --restore  # only retrain the weights the analysis loads

The analysis notebooks (Table 6, Figure 4) load the trained weights of their runs; weights do not travel between machines,
so missing ones are retrained (`midl.experiment.restore_model`). This script retrains them first, `workers` at a time;
`--restore` does only that, and may run while the sweep's last runs still train (a core is free then).

Run it from the repository root on a quiet machine (10_table8 re-times every latency), then commit."""
import sys, json, shutil, subprocess
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp
import papermill as pm
from midl.reproduce import EXPERIMENT_NOTEBOOKS, plan_specs
from midl.experiment import model_path, restore_model

PAPER, FULL, SMALL = Path('results/paper'), Path('results/full'), Path('results/small')
COMMON = dict(scale='full', workers=2, results_dir='../results/full/runs', out_dir='../results/full', run_missing=False,
              models_dir='../_out/full/models', superseded_dir='../results/full/superseded', pilot_dir='../results/full/pilot',
              readme='../README.md', reruns_dir='../results/full/reruns')

def missing_runs(base=PAPER) -> list:
    "Keys the plan keeps that have no record yet."
    kept = json.loads((base/'plan.json').read_text())['kept']
    return [k for k in kept if not (base/'runs'/f'{k}.json').exists()]

ANALYSED = ('15_table6.ipynb', '17_figure4.ipynb')    # notebooks that load trained weights

def to_restore(base: Path, models: Path) -> list:
    "(spec, record) of each run the analysis notebooks load that has a record in `base/runs` but no weights in `models`."
    recs = [(s, base/'runs'/f'{s.key}.json') for s in plan_specs('full', ANALYSED)]
    return [(s, json.loads(r.read_text())) for s, r in recs if r.exists() and not model_path(models, s).exists()]

def restore(base: Path, models: Path, workers: int = 2, dry=False):
    "Retrain the missing weights, `workers` processes side by side; each writes its accuracy note (`restored_path`)."
    todo = to_restore(base, models)
    for s, _ in todo: print(f'restore {s.key} -> {model_path(models, s)}', flush=True)
    if dry or not todo: return
    with ProcessPoolExecutor(workers, mp_context=mp.get_context('spawn')) as ex:
        for f in [ex.submit(restore_model, s, models, r) for s, r in todo]: f.result()

def params_of(nb: Path) -> dict:
    "Those of `COMMON` that `nb` declares in its parameters cell."
    declared = pm.inspect_notebook(str(nb))
    return {k: v for k, v in COMMON.items() if k in declared}

def main(dry=False, restore_only=False):
    base = PAPER if PAPER.exists() else FULL                       # a second call, after the move, executes again
    models = lambda b: Path('_out/paper/models') if b == PAPER else Path('_out/full/models')   # where the sweep kept them
    if restore_only: return restore(base, models(base), dry=dry)
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
    restore(*((base, models(base)) if dry else (FULL, models(FULL))), dry=dry)
    for name in EXPERIMENT_NOTEBOOKS:
        nb = Path('nbs')/name
        p = params_of(nb)
        print(f'papermill -k python3 {nb} {nb} ' + ' '.join(f'-p {k} {v}' for k, v in p.items()), flush=True)
        if not dry: pm.execute_notebook(str(nb), str(nb), parameters=p, kernel_name='python3', cwd='nbs', progress_bar=False)
    if not dry: subprocess.run(['.venv/bin/nbdev_clean'], check=True)

if __name__ == '__main__': main('--dry-run' in sys.argv, '--restore' in sys.argv)
