"Progress bars: on in an interactive terminal, off in notebooks run by papermill and in logs (`midl.train.progress_default`)."
import io, re, sys
from pathlib import Path
import nbformat
import pytest
from midl import experiment as E
from midl import reproduce as R

ROOT = Path(__file__).resolve().parent.parent
BAR = re.compile(r'\d+it \[|it/s\]|s/it\]')                  # tqdm's counters: "0it [00:00, ?it/s]", "| 3/106 [00:01<00:43,  2.37it/s]"

class _Stream(io.StringIO):
    "A stderr that says whether it is a terminal."
    def __init__(self, tty): super().__init__(); self.tty = tty
    def isatty(self): return self.tty

@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv('MIDL_PROGRESS', raising=False)
    return monkeypatch

@pytest.mark.parametrize('tty', [True, False])
def test_auto_follows_the_terminal(no_env, tty):
    no_env.setattr(sys, 'stderr', _Stream(tty))
    assert E.progress_default() is tty and E.progress_default(None) is tty

def test_no_stderr_means_no_bars(no_env):
    no_env.setattr(sys, 'stderr', None)                      # pythonw, a daemon: no stream at all
    assert E.progress_default() is False

@pytest.mark.parametrize('value,want', [('1', True), ('true', True), ('Yes', True), ('on', True),
                                        ('0', False), ('false', False), ('NO', False), ('off', False)])
def test_the_environment_overrides_the_terminal(no_env, value, want):
    no_env.setenv('MIDL_PROGRESS', value)
    for tty in (True, False):
        no_env.setattr(sys, 'stderr', _Stream(tty))
        assert E.progress_default() is want

def test_an_explicit_argument_wins(no_env):
    no_env.setenv('MIDL_PROGRESS', '1'); assert E.progress_default(False) is False
    no_env.setenv('MIDL_PROGRESS', '0'); assert E.progress_default(True) is True

def test_an_unknown_value_warns_and_falls_back(no_env):
    no_env.setenv('MIDL_PROGRESS', 'maybe'); no_env.setattr(sys, 'stderr', _Stream(True))
    with pytest.warns(UserWarning, match='MIDL_PROGRESS'): assert E.progress_default() is True

def test_sweep_and_latency_pass_default_to_auto(no_env, tmp_path):
    "Neither trains nor times anything here (no specs, no records): only whether a bar is drawn."
    for value, drawn in (('0', False), ('1', True)):
        no_env.setenv('MIDL_PROGRESS', value)
        err = _Stream(False); no_env.setattr(sys, 'stderr', err)
        assert E.sweep([], tmp_path/'runs') == []
        assert E.quiet_latency_pass(tmp_path/'runs') == 0
        text = err.getvalue()
        assert bool(BAR.search(text)) is drawn, text
        assert ('runs (0 done before)' in text) is drawn and ('quiet latency pass' in text) is drawn

def test_run_notebook_starts_kernels_without_bars(no_env, tmp_path):
    "The kernel papermill starts inherits MIDL_PROGRESS=0 (unless the user set it); the environment is restored after."
    seen = []
    class FakePapermill:
        PapermillExecutionError = RuntimeError
        @staticmethod
        def inspect_notebook(path): return {}
        @staticmethod
        def execute_notebook(*a, **k): seen.append(__import__('os').environ.get('MIDL_PROGRESS'))
    no_env.setattr(R, '_papermill', lambda: FakePapermill)
    R.run_notebook(tmp_path/'a.ipynb', tmp_path/'out'/'a.ipynb', {}, tmp_path)
    assert seen == ['0'] and 'MIDL_PROGRESS' not in __import__('os').environ
    no_env.setenv('MIDL_PROGRESS', '1')
    R.run_notebook(tmp_path/'a.ipynb', tmp_path/'out'/'a.ipynb', {}, tmp_path)
    assert seen == ['0', '1'] and __import__('os').environ['MIDL_PROGRESS'] == '1'

def _output_texts(nb):
    for c in nb.cells:
        for o in c.get('outputs', []):
            if o.output_type == 'stream': yield c, o.text
            elif 'data' in o: yield c, str(o.data.get('text/plain', ''))

def test_committed_experiment_outputs_hold_no_progress_bars():
    "What a reader sees in the experiment notebooks (and the docs built from them) has no tqdm lines."
    bad = []
    for p in sorted((ROOT/'nbs').glob('1*.ipynb')):
        nb = nbformat.read(str(p), as_version=4)
        bad += [f'{p.name}: {line.strip()[:80]!r}' for c, text in _output_texts(nb)
                for line in re.split(r'[\r\n]', text) if BAR.search(line)]
    assert not bad, '\n'.join(bad[:10])
