"Issue 25: experiment parameters are checked before any run starts, in Python, in the notebooks and on the command line; one clear error each, nothing written."
from pathlib import Path
import pytest, papermill as pm, torch
from midl import plan as P, reproduce as R

NBS = Path(__file__).resolve().parent.parent/'nbs'

# (parameter values, what the message says): each is refused by `check_params` before anything runs
BAD = [(dict(epochs=-1), "epochs=-1 is not a number of epochs; pass a whole number >= 1, or None for the scale's epochs"),
       (dict(epochs=2.5), 'epochs=2.5 is not a number of epochs'),
       (dict(workers=0), 'workers=0 is not a number of workers; pass a whole number >= 1'),
       (dict(seeds=[0, -1]), "seeds=[0, -1]: -1 is not a seed; pass whole numbers >= 0, e.g. [0, 1], or None for the scale's seeds"),
       (dict(seeds='[0, x]'), "seeds='[0, x]' is not a list of seeds"),
       (dict(seeds=[]), 'seeds=[] names no seed'),
       (dict(seeds=[1, 1]), 'seeds=[1, 1] names a seed twice'),
       (dict(datasets=['digits', 'mnst']), "datasets=['digits', 'mnst']: 'mnst' is not a dataset; pass names of: mnist, fashion_mnist, kmnist"),
       (dict(datasets=[]), 'datasets=[] names no dataset'),
       (dict(scale='huge'), "scale='huge' is not a scale; use one of: smoke, default, full"),
       (dict(device='gpu'), "device='gpu' is not a device; use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"),
       (dict(engine='spark'), "engine='spark' is not an engine; use 'local' or 'ray'"),
       (dict(plan='table3', noise=0.1), "noise=0.1: plan table3 has no parameter 'noise'; its own parameters: layers, noises"),
       (dict(plan='table9'), "plan='table9' is not a plan; use one of: table8, table2")]
IDS = [' '.join(f'{k}={v!r}' for k, v in b.items()) for b, _ in BAD]

@pytest.mark.parametrize('bad,msg', BAD, ids=IDS)
def test_run_experiment_refuses_before_writing(tmp_path, bad, msg):
    args = {**dict(plan='table8', datasets=['digits'], scale='smoke', seeds=[0], epochs=1, results_dir=tmp_path/'results'), **bad}
    with pytest.raises(P.ParamError) as e: P.run_experiment(**args)
    assert msg in str(e.value) and '\n' not in str(e.value)
    assert isinstance(e.value, ValueError)
    assert not (tmp_path/'results').exists()                     # nothing launched, nothing written

@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_a_missing_device_is_refused(tmp_path):
    with pytest.raises(P.ParamError, match="device='cuda': CUDA is not available here; use 'cpu' or 'auto'"):
        P.run_experiment('table8', ['digits'], 'smoke', device='cuda', results_dir=tmp_path/'r')
    assert not (tmp_path/'r').exists()

def test_values_are_normalised():
    p = P.check_params('table8', '[MNIST, fashion-mnist]', '0,1', '3', 'smoke', 'cpu', '2', 'local')
    assert (p['datasets'], p['seeds'], p['epochs'], p['workers']) == (['mnist', 'fashion_mnist'], [0, 1], 3, 2)
    assert P.check_params(seeds=None, epochs=None)['seeds'] is None                 # None: the scale's

def test_one_seed_rule():
    "One seed parameter, `seeds`, everywhere; Table 6 and Figure 4 analyse one model per dataset and layer: the first seed."
    for name in R.NOTEBOOK_PLANS:
        declared = pm.inspect_notebook(str(NBS/name))
        assert 'seed' not in declared and ('seeds' in declared), name
    assert {s.seed for s in P.table6_specs(['mnist'], 'smoke', [3, 4])} == {3}
    assert {s.seed for s in P.figure4_specs(['mnist'], 'smoke')} == {0}

def run_table8(tmp_path, **params):
    p = {**dict(scale='smoke', datasets='[digits]', results_dir=str(tmp_path/'results'), out_dir=str(tmp_path/'out'), models_dir=None), **params}
    R.run_notebook(NBS/'10_table8.ipynb', tmp_path/'executed.ipynb', p, NBS)

@pytest.mark.parametrize('bad,msg', [(dict(epochs=-1), 'ParamError: epochs=-1 is not a number of epochs'),
                                     (dict(workers=0), 'ParamError: workers=0 is not a number of workers'),
                                     (dict(seeds='[0, -1]'), "ParamError: seeds='[0, -1]': -1 is not a seed"),
                                     (dict(datasets='[digits, mnst]'), "'mnst' is not a dataset")], ids=['epochs', 'workers', 'seeds', 'datasets'])
def test_notebook_refuses_before_writing(tmp_path, bad, msg):
    "Through papermill, as `papermill -p epochs -1` would: the notebook stops at its first run_experiment call, nothing is written."
    with pytest.raises(R.NotebookFailed) as e: run_table8(tmp_path, **bad)
    assert msg in str(e.value)
    assert not (tmp_path/'results').exists() and not (tmp_path/'out').exists()

CLI_BAD = [(['--workers', '0'], '--workers 0 is not a number of workers; pass a whole number >= 1'),
           (['--workers', 'x'], "argument --workers: invalid int value: 'x'"),
           (['--scale', 'huge'], '--scale huge is not a scale; use one of: smoke, default, full'),
           (['--device', 'gpu'], "--device gpu is not a device; use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"),
           (['--engine', 'spark'], "--engine spark: engine='spark' is not an engine"),
           (['-p', 'epochs', '-1'], "-p epochs -1 is not a number of epochs; pass a whole number >= 1, or None for the scale's epochs"),
           (['-p', 'epochs', '0', '--only', 'table4'], '-p epochs 0 is not a number of epochs'),
           (['-p', 'seeds', '[0, -1]'], "-p seeds [0, -1]: -1 is not a seed"),
           (['-p', 'datasets', '[digits, mnst]'], "-p datasets [digits, mnst]: 'mnst' is not a dataset"),
           (['-p', 'dataset', 'cifar', '--only', 'table3'], "-p dataset cifar: 'cifar' is not a dataset"),
           (['-p', 'seed', '0'], "-p seed: no notebook of this run has a parameter 'seed'; theirs: "),
           (['-p', 'epochs', '2', '--only', 'table5'], "-p epochs: no notebook of this run has a parameter 'epochs'"),
           (['-p', 'scale', 'full'], '-p scale: set by --scale; use that option instead'),
           (['-p', 'workers', '2'], '-p workers: set by --workers'),
           (['--bogus'], 'unrecognized arguments: --bogus')]

@pytest.mark.parametrize('argv,msg', CLI_BAD, ids=[' '.join(a) for a, _ in CLI_BAD])
def test_cli_refuses_with_one_line_and_status_2(tmp_path, capsys, argv, msg):
    assert R.main(argv + ['--out', str(tmp_path/'out')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('midl_reproduce: ') and msg in err and err.count('\n') == 1 and 'Traceback' not in err
    assert not (tmp_path/'out').exists()                         # nothing written

def test_cli_passes_checked_parameters_to_the_notebooks_that_declare_them(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(R, 'run_notebook', lambda src, dst, params, cwd: calls.append((src.name, params)))
    monkeypatch.setattr(R, 'sweep', lambda specs, res, **kw: calls.append(('pool', sorted({(s.dataset, s.seed, s.epochs) for s in specs}))))
    assert R.main(['--scale', 'smoke', '--only', 'table8', 'table5', '--workers', '2', '--out', str(tmp_path/'o'),
                   '-p', 'datasets', '[digits]', '-p', 'seeds', '[3]', '-p', 'epochs', '2', '-p', 'batch', '16']) == 0
    pool, t8, t5 = calls
    assert pool == ('pool', [('digits', 3, 2)])                  # the pool trains what the notebooks will ask for
    assert t8[0] == '10_table8.ipynb' and {k: t8[1][k] for k in ('datasets', 'seeds', 'epochs', 'workers')} == \
        dict(datasets='[digits]', seeds='[3]', epochs=2, workers=2) and 'batch' not in t8[1]
    assert t5[0] == '13_table5.ipynb' and t5[1]['batch'] == 16 and 'seeds' not in t5[1]
