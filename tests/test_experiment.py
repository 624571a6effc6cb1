"Experiment runner: spec keys, atomic writes (also under SIGKILL), resume, aggregation, the paper's tables."
import signal, subprocess, sys, textwrap, time
import pandas as pd, pytest
from midl import experiment as E
from midl.experiment import RunSpec, write_json_atomic, read_json, sweep, aggregate, paper_table, side_by_side, PAPER

def test_spec_key_is_stable_and_distinguishes_fields():
    a = RunSpec(dataset='mnist', seed=1, layer_config=dict(top_k=0.5))
    assert a.key == RunSpec(dataset='mnist', seed=1, layer_config=dict(top_k=0.5)).key
    assert a.key != RunSpec(dataset='mnist', seed=1, layer_config=dict(top_k=0.25)).key
    assert a.key.startswith('run-mnist-midl-s1-')

def test_killed_write_leaves_no_broken_file(tmp_path):
    target = tmp_path / 'r.json'
    write_json_atomic({'old': True}, target)
    code = textwrap.dedent(f"""
        import time, json
        from midl.experiment import write_json_atomic
        class Slow:
            def __iter__(self):
                for i in range(10**9):
                    time.sleep(0.001); yield i
        import midl.experiment as E
        E._json_default = lambda o: list(o)        # serialise the endless generator slowly
        write_json_atomic({{'x': Slow()}}, {str(target)!r})
    """)
    p = subprocess.Popen([sys.executable, '-c', code])
    time.sleep(3); p.send_signal(signal.SIGKILL); p.wait()
    assert read_json(target) == {'old': True}                  # the old result is intact and valid
    assert [f.name for f in tmp_path.glob('*.json')] == ['r.json']

def test_failed_write_cleans_up(tmp_path):
    with pytest.raises(TypeError, match='cannot store'): write_json_atomic({'a': object()}, tmp_path / 'x.json')
    assert list(tmp_path.iterdir()) == []

def test_sweep_resumes_and_skips_done(tmp_path, monkeypatch):
    calls = []
    def fake_run(spec, root=None, model_path=None):
        calls.append(spec.seed)
        if spec.seed == 2 and len([c for c in calls if c == 2]) == 1: raise RuntimeError('interrupted')
        return dict(spec=spec.asdict(), key=spec.key, metrics=dict(accuracy=0.5 + spec.seed / 10))
    monkeypatch.setattr(E, 'run', fake_run)
    specs = [RunSpec(seed=s) for s in range(4)]
    recs = sweep(specs, tmp_path, progress=False)
    assert calls == [0, 1, 2, 3] and len(recs) == 3                          # seed 2 failed, the rest finished
    assert (tmp_path / f'{specs[2].key}.error.txt').exists()
    recs = sweep(specs, tmp_path, progress=False)                            # resume: only the failed one runs
    assert calls == [0, 1, 2, 3, 2] and len(recs) == 4
    assert [r['metrics']['accuracy'] for r in recs] == [0.5, 0.6, 0.7, 0.8]

def test_aggregate_mean_std_over_seeds():
    recs = [dict(spec=dict(tag='t', dataset='x', layer='midl', seed=s, layer_config={}), metrics=dict(accuracy=a))
            for s, a in enumerate([0.8, 0.9, 1.0])]
    agg = aggregate(recs)
    assert agg.loc[('t', 'x', 'midl'), ('accuracy', 'mean')] == pytest.approx(0.9)
    assert agg.loc[('t', 'x', 'midl'), ('accuracy', 'std')] == pytest.approx(0.1)
    assert agg.loc[('t', 'x', 'midl'), ('n', 'seeds')] == 3

def test_paper_tables_as_data():
    assert set(PAPER.table) == {2, 3, 4, 5, 6, 7, 8}
    assert paper_table(8).loc[('IMDB', 'MID-L'), 'ANR (%)'] == 49.5
    assert paper_table(3).loc[('CIFAR-10', 'MID-L'), '40% noise'] == 55.8
    assert paper_table(4).loc[('CIFAR-10', 'Full MID-L'), 'ANR (%)'] == 41.8
    ours = pd.DataFrame({'ANR (%)': ['50.0']}, index=pd.MultiIndex.from_tuples([('IMDB', 'MID-L')], names=['dataset', 'model']))
    sbs = side_by_side(ours, 8)
    assert sbs.loc[('IMDB', 'MID-L'), 'ANR (%) (paper)'] == 49.5 and sbs.loc[('MNIST', 'MID-L'), 'ANR (%) (ours)'] == 'not run'

def test_run_is_deterministic_on_cpu():
    spec = RunSpec(dataset='digits', layer='midl', layer_config=dict(top_k=0.5, variant='section_4_4'), epochs=2,
                   label_noise=0.2, n_test=200)
    r1, r2 = E.run(spec), E.run(spec)
    assert r1['metrics']['accuracy'] == r2['metrics']['accuracy'] and r1['metrics']['flops'] == r2['metrics']['flops']
    assert [h['train_loss'] for h in r1['history']] == [h['train_loss'] for h in r2['history']]
    assert r1['metrics']['flops_ideal'] < r1['metrics']['flops'] and r1['metrics']['anr'] == 0.5
    assert r1['data']['n_test'] == 200 and r1['env']['torch']

def test_parallel_sweep_matches_serial(tmp_path):
    specs = [RunSpec(dataset='digits', layer=l, epochs=1, n_train=200, n_test=100) for l in ('dense', 'midl')]
    par = sweep(specs, tmp_path / 'par', workers=2, threads=1, progress=False)
    ser = sweep(specs, tmp_path / 'ser', workers=1, threads=1, progress=False)
    assert [r['metrics']['accuracy'] for r in par] == [r['metrics']['accuracy'] for r in ser]
