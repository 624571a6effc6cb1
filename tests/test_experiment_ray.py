"The Ray engine of `sweep` (issue 16): the local engine's records, resume, failures, killed workers retried, no Ray."
import importlib.util, os, sys, types
import pytest, torch
from midl import experiment as E, plan as P, reproduce as R
from midl.experiment import RunSpec, RunsFailedError, sweep, result_path, model_path

needs_ray = pytest.mark.skipif(importlib.util.find_spec('ray') is None, reason='Ray is not installed (pip install -e ".[ray]")')

def _specs(n=4):
    runs = [(l, c, s) for s in (0, 1) for l, c in (('dense', dict(p=0.5)), ('midl', dict(top_k=0.5)))]
    return [RunSpec(dataset='digits', layer=l, layer_config=c, seed=s, epochs=2, n_train=300, n_test=100, latency_batch=8,
                    tag='ray') for l, c, s in runs[:n]]

@pytest.fixture(scope='module')
def ray_local():
    "One local Ray instance (2 CPUs, no dashboard) for this module's tests; the sweeps use it and leave it open."
    import ray
    ray.init(num_cpus=2, include_dashboard=False, logging_level='warning')
    try: yield ray
    finally: ray.shutdown()

TIMED = ('latency_ms', 'latency_iqr_ms')                               # wall-clock measurements: differ from run to run
def _same_run(a, b):
    ma, mb = ({k: v for k, v in r['metrics'].items() if k not in TIMED} for r in (a, b))
    assert ma == mb and set(a['metrics']) == set(b['metrics'])
    assert [h['train_loss'] for h in a['history']] == [h['train_loss'] for h in b['history']]
    assert (a['key'], a['spec'], a['data'], a['n_params']) == (b['key'], b['spec'], b['data'], b['n_params'])

@needs_ray
def test_ray_records_and_weights_equal_the_local_engine(tmp_path, ray_local):
    specs = _specs(4)
    local = sweep(specs, tmp_path/'local', workers=2, threads=1, models_dir=tmp_path/'lm', progress=False)
    ray_ = sweep(specs, tmp_path/'ray', engine='ray', threads=1, models_dir=tmp_path/'rm', progress=False)
    assert [r['key'] for r in ray_] == [s.key for s in specs] and len(local) == 4
    for a, b in zip(local, ray_): _same_run(a, b)
    for s in specs:                                                    # the weights came back to the driver, identical
        wa, wb = (torch.load(model_path(m, s), weights_only=True) for m in (tmp_path/'lm', tmp_path/'rm'))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not list((tmp_path/'ray').glob('*.lock')) and not list((tmp_path/'ray').glob('*.error.txt'))
    assert ray_local.is_initialized()                                  # an instance the caller opened stays open

@needs_ray
def test_ray_sweep_resumes(tmp_path, ray_local):
    specs = _specs(3)
    sweep(specs[:2], tmp_path, engine='ray', threads=1, progress=False)
    mtimes = [result_path(tmp_path, s).stat().st_mtime_ns for s in specs[:2]]
    recs = sweep(specs, tmp_path, engine='ray', threads=1, progress=False)
    assert len(recs) == 3 and [result_path(tmp_path, s).stat().st_mtime_ns for s in specs[:2]] == mtimes

@needs_ray
def test_failed_run_is_reported_as_locally(tmp_path, ray_local):
    specs = _specs(1) + [RunSpec(dataset='digits', n_train=2000, epochs=1, tag='ray')]     # more samples than digits has
    errs = {}
    for engine in ('local', 'ray'):
        with pytest.raises(RunsFailedError) as e: sweep(specs, tmp_path/engine, engine=engine, threads=1, progress=False)
        errs[engine] = e.value
    local, ray_ = errs['local'], errs['ray']
    assert str(ray_).startswith('1 of 2 runs failed') and 'ValueError: n=2000 must be in 1..' in str(ray_)
    assert str(ray_).replace(str(tmp_path/'ray'), 'D') == str(local).replace(str(tmp_path/'local'), 'D')
    assert [(k, p.name, l) for k, p, l in ray_.errors] == [(k, p.name, l) for k, p, l in local.errors]
    assert ray_.errors[0][1].exists() and 'Traceback' in ray_.errors[0][1].read_text()
    assert len(ray_.records) == 1 and result_path(tmp_path/'ray', specs[0]).exists()   # the other run finished

def _exit_first(marker_dir, times):
    "A task that kills its worker process on its first `times` attempts (a file per attempt in `marker_dir`), then runs."
    def task(*args):
        n = len(os.listdir(marker_dir))
        open(os.path.join(marker_dir, f'attempt-{n}'), 'w').close()
        if n < times: os._exit(1)
        return E._ray_run(*args)                                       # in the worker: the real task
    return task

@needs_ray
def test_killed_worker_is_retried(tmp_path, ray_local, monkeypatch):
    (marks := tmp_path/'marks').mkdir()
    monkeypatch.setattr(E, '_ray_run', _exit_first(str(marks), times=1))
    recs = sweep(_specs(1), tmp_path/'res', engine='ray', threads=1, progress=False)
    assert len(recs) == 1 and sorted(os.listdir(marks)) == ['attempt-0', 'attempt-1']

@needs_ray
def test_worker_killed_every_time_is_a_failed_run(tmp_path, ray_local, monkeypatch):
    (marks := tmp_path/'marks').mkdir()
    monkeypatch.setattr(E, '_ray_run', _exit_first(str(marks), times=99))
    with pytest.raises(RunsFailedError, match='^1 of 1 runs failed') as e:
        sweep(_specs(1), tmp_path/'res', engine='ray', threads=1, progress=False)
    assert len(os.listdir(marks)) == 1 + E._RAY_RETRIES                # bounded retries, then the sweep finishes
    assert e.value.errors[0][1].exists() and not list((tmp_path/'res').glob('*.lock'))

def test_ray_not_installed_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'ray', None)                      # `import ray` fails, as without Ray
    with pytest.raises(ImportError, match=r'pip install -e "\.\[ray\]"'): sweep(_specs(1), tmp_path, engine='ray')
    assert not list(tmp_path.iterdir())                                # nothing ran
    assert R.main(['--engine', 'ray', '--out', str(tmp_path/'o')]) == 2

def _fake_ray(monkeypatch, initialized=False):
    calls = []
    fake = types.SimpleNamespace(is_initialized=lambda: initialized, init=lambda **kw: calls.append(('init', kw)),
                                 shutdown=lambda: calls.append(('shutdown',)))
    monkeypatch.setitem(sys.modules, 'ray', fake)
    return calls

def test_ray_session_starts_joins_and_leaves(monkeypatch):
    monkeypatch.delenv('RAY_ADDRESS', raising=False)
    calls = _fake_ray(monkeypatch)
    with pytest.raises(KeyError):
        with E._ray_session(): raise KeyError('a failure inside')     # a local instance, shut down also on failure
    assert calls == [('init', dict(include_dashboard=False, logging_level='warning')), ('shutdown',)]
    calls = _fake_ray(monkeypatch)
    with E._ray_session('auto'): pass                                  # join the cluster, then only disconnect
    assert calls == [('init', dict(address='auto', logging_level='warning')), ('shutdown',)]
    monkeypatch.setenv('RAY_ADDRESS', 'ray://head:10001'); calls = _fake_ray(monkeypatch)
    with E._ray_session(): pass
    assert calls[0] == ('init', dict(address='ray://head:10001', logging_level='warning'))
    calls = _fake_ray(monkeypatch, initialized=True)
    with E._ray_session('auto'): pass                                  # an instance already open: used, left open
    assert calls == []

def test_midl_reproduce_passes_the_engine(tmp_path, monkeypatch):
    got = []
    monkeypatch.setattr(R, 'reproduce', lambda *a, **kw: got.append(kw) or 'summary')
    assert R.main(['--engine', 'ray', '--address', 'auto', '--out', str(tmp_path)]) == 0
    assert (got[0]['engine'], got[0]['address']) == ('ray', 'auto')
    monkeypatch.setattr(P, 'sweep', lambda specs, res, **kw: got.append(kw) or [])
    P.run_experiment('table8', ['digits'], 'smoke', [0], epochs=1, results_dir=tmp_path, engine='ray', address='auto')
    assert (got[1]['engine'], got[1]['address']) == ('ray', 'auto')

def test_experiment_notebooks_take_engine_and_address():
    pm = pytest.importorskip('papermill')
    for name in R.NOTEBOOK_PLANS:                                      # papermill must parse both, or it drops them
        declared = pm.inspect_notebook(str(R.find_nbs()/name))
        assert (declared['engine']['default'], declared['address']['default']) == ("'local'", 'None'), name
