"Experiment runner: spec keys, atomic writes (also under SIGKILL), resume, aggregation, the paper's tables."
import json, os, signal, subprocess, sys, textwrap, time, warnings
from pathlib import Path
import pandas as pd, pytest
from midl import experiment as E, files as F
from midl.experiment import RunSpec, write_json_atomic, read_json, sweep

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
        import midl.files as F
        F._json_default = lambda o: list(o)        # serialise the endless generator slowly
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
    def fake_run(spec, root=None, model_path=None, workers=1):
        calls.append(spec.seed)
        if spec.seed == 2 and len([c for c in calls if c == 2]) == 1: raise RuntimeError('interrupted')
        return dict(spec=spec.asdict(), key=spec.key, metrics=dict(accuracy=0.5 + spec.seed / 10))
    monkeypatch.setattr(E, 'run', fake_run)
    specs = [RunSpec(seed=s) for s in range(4)]
    with pytest.raises(E.RunsFailedError, match='^1 of 4 runs failed'):
        sweep(specs, tmp_path, progress=False)
    assert calls == [0, 1, 2, 3] and len(list(tmp_path.glob('*.json'))) == 3  # seed 2 failed, the rest finished
    assert (tmp_path / f'{specs[2].key}.error.txt').exists()
    recs = sweep(specs, tmp_path, progress=False)                            # resume: only the failed one runs
    assert calls == [0, 1, 2, 3, 2] and len(recs) == 4
    assert not (tmp_path / f'{specs[2].key}.error.txt').exists()             # it succeeded: its stale error file is gone
    assert [r['metrics']['accuracy'] for r in recs] == [0.5, 0.6, 0.7, 0.8]

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

def fake_runs(monkeypatch, fail=()):
    "Replace `run` by a fast fake that records the seeds it ran and fails for the seeds in `fail`."
    calls = []
    def fake_run(spec, root=None, model_path=None, workers=1):
        calls.append(spec.seed)
        if spec.seed in fail: raise ValueError('n=2000 must be in 1..1347')
        return dict(spec=spec.asdict(), key=spec.key, metrics=dict(accuracy=spec.seed / 10))
    monkeypatch.setattr(E, 'run', fake_run)
    return calls

def test_failed_runs_raise_after_the_others_finish(tmp_path, monkeypatch):
    calls = fake_runs(monkeypatch, fail=(1, 3))
    specs = [RunSpec(seed=s) for s in range(4)]
    with pytest.raises(E.RunsFailedError) as ei: sweep(specs, tmp_path, progress=False)
    assert isinstance(ei.value, RuntimeError) and calls == [0, 1, 2, 3]
    err = tmp_path / f'{specs[1].key}.error.txt'
    msg = str(ei.value)
    assert msg.startswith('2 of 4 runs failed') and specs[1].key in msg and str(err) in msg
    assert 'ValueError: n=2000 must be in 1..1347' in msg
    assert ei.value.errors == [(specs[1].key, err, 'ValueError: n=2000 must be in 1..1347'),
                               (specs[3].key, tmp_path / f'{specs[3].key}.error.txt', 'ValueError: n=2000 must be in 1..1347')]
    assert 'Traceback' in err.read_text() and [r['spec']['seed'] for r in ei.value.records] == [0, 2]
    recs = sweep(specs, tmp_path, progress=False, strict=False)              # the old behaviour: print, return what exists
    assert [r['spec']['seed'] for r in recs] == [0, 2] and calls == [0, 1, 2, 3, 1, 3]

@pytest.mark.parametrize('content', ['', '{"spec": {}, "metr', '{}', '{"spec": {}, "key": "x"}', '[1, 2]'])
def test_broken_result_file_is_rerun_not_trusted(tmp_path, monkeypatch, content):
    calls = fake_runs(monkeypatch)
    spec = RunSpec(seed=5); p = E.result_path(tmp_path, spec)
    p.write_text(content)
    with pytest.warns(UserWarning, match=p.name): assert sweep([spec], tmp_path, progress=False, run_missing=False) == []
    with pytest.warns(UserWarning, match=p.name): assert E.load_results(tmp_path) == []
    with pytest.warns(UserWarning, match=p.name): recs = sweep([spec], tmp_path, progress=False)
    assert calls == [5] and recs[0]['metrics'] == dict(accuracy=0.5) and E.load_results(tmp_path) == recs

def sleeper():
    "A live process that is not us, to hold a lock."
    return subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])

def test_spec_locked_by_a_live_process_is_skipped_and_a_stale_lock_taken_over(tmp_path, monkeypatch):
    calls = fake_runs(monkeypatch)
    specs = [RunSpec(seed=s) for s in range(3)]
    lock = tmp_path / f'{specs[1].key}.lock'
    p = sleeper()
    try:
        lock.write_text(str(p.pid))
        with pytest.warns(UserWarning, match=rf'1 run is being run by another process \(pid {p.pid}\)'):
            recs = sweep(specs, tmp_path, progress=False)                # strict, yet no error: it is not a failure
        assert calls == [0, 2] and [r['spec']['seed'] for r in recs] == [0, 2] and lock.read_text() == str(p.pid)
    finally: p.kill(); p.wait()
    recs = sweep(specs, tmp_path, progress=False)                        # its pid is dead now: the lock is stale
    assert calls == [0, 2, 1] and len(recs) == 3 and not lock.exists()
    assert list(tmp_path.glob('*.lock')) == []                           # locks are released

def test_lock_is_exclusive(tmp_path):
    lock = tmp_path / 'k.lock'
    assert F.acquire_lock(lock) is None and F.acquire_lock(lock) == os.getpid()   # held by a live process: us
    F.release_lock(lock); assert not lock.exists()
    lock.write_text('999999999 ' + os.uname().nodename)                 # no such pid: stale, taken over
    assert F.acquire_lock(lock) is None and lock.read_text().split()[0] == str(os.getpid())

def test_result_and_error_files_are_readable_by_others(tmp_path, monkeypatch):
    E.write_json_atomic({'a': 1}, tmp_path / 'r.json')
    E.atomic_write(tmp_path / 'm.pt', lambda tmp: Path(tmp).write_bytes(b'x'))
    assert [f.stat().st_mode & 0o777 for f in sorted(tmp_path.iterdir())] == [0o644, 0o644]   # mkstemp alone: 0600
    fake_runs(monkeypatch, fail=(1,))
    with pytest.raises(E.RunsFailedError): sweep([RunSpec(seed=0), RunSpec(seed=1)], tmp_path, progress=False)
    for f in tmp_path.iterdir(): assert f.stat().st_mode & 0o777 == 0o644, f

def _alive(pid):
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    try: return Path(f'/proc/{pid}/stat').read_text().split(') ')[1][0] != 'Z'   # a zombie has ended
    except FileNotFoundError: return False

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
def test_workers_end_when_the_sweep_is_killed(tmp_path):
    code = textwrap.dedent(f"""
        from midl.experiment import RunSpec, sweep
        if __name__ == '__main__':
            sweep([RunSpec(seed=s, epochs=10**6, n_train=100, n_test=50) for s in range(2)], {str(tmp_path)!r},
                  workers=2, threads=1, progress=False)
    """)
    (tmp_path / 'parent.py').write_text(code)
    parent = subprocess.Popen([sys.executable, str(tmp_path / 'parent.py')])
    try:
        deadline = time.time() + 120                                     # the workers import torch first
        while len(list(tmp_path.glob('*.lock'))) < 2 and time.time() < deadline: time.sleep(0.2)
        locks = list(tmp_path.glob('*.lock'))
        assert len(locks) == 2, 'the workers did not start their runs'
        pids = [int(l.read_text().split()[0]) for l in locks]            # a running spec's lock holds its worker's pid
        assert parent.pid not in pids and all(_alive(p) for p in pids)
        time.sleep(1)
    finally: parent.kill(); parent.wait()
    deadline = time.time() + 10
    while any(_alive(p) for p in pids) and time.time() < deadline: time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for p in left: os.kill(p, signal.SIGKILL)
    assert left == [], f'workers {left} outlived their sweep'

def test_missing_frost_photographs_stop_a_run_before_training(tmp_path, monkeypatch):
    "A spec evaluated on CIFAR-10-C fails at once when the frost photographs are missing, not after training."
    from midl.corruptions import FrostPhotosNotFoundError
    import midl.experiment as E
    monkeypatch.setattr(E, 'train_spec', lambda *a, **k: pytest.fail('trained before checking the corruption inputs'))
    with pytest.raises(FrostPhotosNotFoundError, match='midl_data download cifar10c_frost'):
        E.run(E.RunSpec(dataset='digits', corruption='all'), root=tmp_path)

def _legacy_record(tmp_path, layer, layer_config, latency_ms):
    "A record made before `RunSpec.model_version` existed: its spec lacks the field, its file is named by the key of then."
    import hashlib
    spec = {k: v for k, v in RunSpec(dataset='digits', layer=layer, layer_config=layer_config, epochs=1, n_test=100,
                                     latency_batch=8, tag='q').asdict().items() if k != 'model_version'}
    key = f"q-digits-{layer}-s0-{hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]}"
    rec = dict(spec=spec, key=key, metrics=dict(accuracy=0.5, latency_ms=latency_ms, latency_iqr_ms=0.1))
    write_json_atomic(rec, tmp_path / f'{key}.json')
    return key

def test_quiet_latency_pass_is_idempotent(tmp_path):
    "Issue 22, defect 7: the pass wrote each record to the file named by its spec's key as computed today, so a record in a file of another name got a second file (a duplicate record of the run), and a second pass timed it again."
    legacy = [_legacy_record(tmp_path, 'dense', dict(p=0.5), 9.0), _legacy_record(tmp_path, 'midl', dict(top_k=0.5), 9.5)]
    current = RunSpec(dataset='digits', layer='midl', layer_config=dict(top_k=0.25), epochs=1, n_test=100, latency_batch=8, tag='q')
    write_json_atomic(dict(spec=current.asdict(), key=current.key, metrics=dict(accuracy=0.5, latency_ms=8.0, latency_iqr_ms=0.1)),
                      E.result_path(tmp_path, current))
    files = sorted(p.name for p in tmp_path.glob('*.json'))
    assert len(files) == 3 and E.record_spec(E.read_json(tmp_path / f'{legacy[0]}.json')).key != legacy[0]
    timing = dict(repeats=3, warmup=1, progress=False)
    assert E.quiet_latency_pass(tmp_path, **timing) == 3
    assert sorted(p.name for p in tmp_path.glob('*.json')) == files            # written back in place: no new files
    once = E.load_results(tmp_path)
    assert len(once) == 3 and all('latency_pass' in r for r in once)
    assert sorted(r['latency_during_training']['latency_ms'] for r in once) == [8.0, 9.0, 9.5]
    assert E.quiet_latency_pass(tmp_path, **timing) == 0                       # every run has its pass: nothing to do
    assert E.load_results(tmp_path) == once
    assert E.quiet_latency_pass(tmp_path, redo=True, **timing) == 3            # redo: each pass replaced, not added
    again = E.load_results(tmp_path)
    assert sorted(p.name for p in tmp_path.glob('*.json')) == files and len(again) == 3
    assert [r['key'] for r in again] == [r['key'] for r in once]
    assert [r['latency_during_training'] for r in again] == [r['latency_during_training'] for r in once]   # still training's
    assert all(set(r) == set(o) for r, o in zip(again, once))

def _hold_lock_and_die(lock):
    "Start a process that takes `lock` with `acquire_lock`, then kill it with SIGKILL (and reap it); returns its lock text."
    code = ("import sys, time\nfrom midl import files as F\n"
            "assert F.acquire_lock(sys.argv[1]) is None\nprint('held', flush=True)\ntime.sleep(600)\n")
    p = subprocess.Popen([sys.executable, '-c', code, str(lock)], stdout=subprocess.PIPE, text=True)
    try: assert p.stdout.readline().strip() == 'held'
    finally: p.kill(); p.wait(); p.stdout.close()
    return lock.read_text()

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
def test_lock_of_a_killed_owner_goes_stale_even_when_its_pid_is_reused(tmp_path):
    "Issue 22, defect 8: a lock left by a killed process is taken over with a message, also when its pid now belongs to an unrelated live process."
    lock = tmp_path / 'k.lock'
    text = _hold_lock_and_die(lock)                                      # SIGKILL: no `finally` released it
    with pytest.warns(UserWarning, match=rf'stale lock {lock}.*pid {text.split()[0]}'):
        assert F.acquire_lock(lock) is None
    assert F.lock_owner(lock)[0] == os.getpid(); F.release_lock(lock); assert not lock.exists()
    text = _hold_lock_and_die(lock)
    p = sleeper()                                                        # the dead owner's pid, reused by another process
    try:
        lock.write_text(text.replace(text.split()[0], str(p.pid), 1))
        with pytest.warns(UserWarning, match=rf'stale lock {lock}.*pid {p.pid}'):
            assert F.acquire_lock(lock) is None
        assert F.lock_owner(lock)[0] == os.getpid()
    finally: p.kill(); p.wait()
    F.release_lock(lock)
    p = sleeper()                                                        # ... while the process that wrote it still runs:
    try:
        live = F.lock_text(p.pid); assert live and live.split()[0] == str(p.pid)
        lock.write_text(live)
        assert F.acquire_lock(lock) == p.pid                           # held
    finally: p.kill(); p.wait()

def test_lock_left_empty_by_a_dead_owner_is_taken_in_bounded_time(tmp_path):
    "Issue 22, defect 8: an owner that died between creating its lock and writing it leaves an empty file; it is taken over after a short, bounded wait, not an error."
    lock = tmp_path / 'k.lock'
    lock.write_text('')
    t = time.monotonic()
    with pytest.warns(UserWarning, match=rf'stale lock {lock}'):
        assert F.acquire_lock(lock) is None
    assert time.monotonic() - t < F.UNREADABLE_STALE_S + 5 and F.lock_owner(lock)[0] == os.getpid()
    F.release_lock(lock); assert not lock.exists()

def test_sweep_takes_over_the_lock_of_a_killed_sweep(tmp_path, monkeypatch):
    "Issue 22, defect 8: the next sweep runs a spec whose lock a killed process left, with a message naming the lock."
    calls = fake_runs(monkeypatch)
    spec = RunSpec(seed=3); lock = tmp_path / f'{spec.key}.lock'
    text = _hold_lock_and_die(lock)
    p = sleeper()
    try:
        lock.write_text(text.replace(text.split()[0], str(p.pid), 1))   # its pid reused meanwhile
        with pytest.warns(UserWarning, match='stale lock'): recs = sweep([spec], tmp_path, progress=False)
    finally: p.kill(); p.wait()
    assert calls == [3] and len(recs) == 1 and not lock.exists()
