"tools/nb_outputs.py: library notebooks' committed outputs, written race-safely and checked against a re-execution."
import json, sys
from pathlib import Path
import nbformat
from nbformat.v4 import new_notebook, new_code_cell, new_markdown_cell

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import nb_outputs as N

def _nb(path, *sources, tags=None):
    "A throwaway notebook of code cells at `path`; `tags` maps a cell index to its tags."
    nb = new_notebook()
    nb.cells = [new_markdown_cell('# A notebook\n> for the tests')] + [new_code_cell(s) for s in sources]
    for i, t in (tags or {}).items(): nb.cells[i].metadata['tags'] = t
    nbformat.write(nb, str(path))
    return path

def _outputs(path): return [c.get('outputs') for c in json.loads(path.read_text())['cells'] if c['cell_type'] == 'code']

def test_library_notebooks_leave_out_experiments():
    names = [p.name for p in N.library_notebooks()]
    assert '00_math.ipynb' in names and 'index.ipynb' in names and '09_analysis.ipynb' in names
    assert not [n for n in names if n[:2] in {'10', '13', '18', '19', '20'}], names

def test_check_passes_when_committed_outputs_match(tmp_path):
    p = _nb(tmp_path/'a.ipynb', "print('hi')\n1 + 1", 'x = 3', "#| slow\nprint('slow')", "#| eval: false\nprint('no')", 'object()')
    assert N.write(p, tmp_path) == (None, [])
    outs = _outputs(p)
    assert outs[0] and outs[4] and outs[1:4] == [[], [], []]        # skipped cells as nbdev_test skips them: no outputs
    assert N.check(p, tmp_path) == []

def test_check_fails_on_a_different_output(tmp_path):
    p = _nb(tmp_path/'a.ipynb', 'x = 1', "print('a\\nb')")
    N.write(p, tmp_path)
    nb = json.loads(p.read_text()); nb['cells'][2]['outputs'][0]['text'] = ['a\n', 'c\n']
    p.write_text(json.dumps(nb))
    bad = N.check(p, tmp_path)
    assert len(bad) == 1 and 'a.ipynb cell 2:' in bad[0] and "'c'" in bad[0] and "'b'" in bad[0]
    assert 'run .venv/bin/python tools/nb_outputs.py --write' in bad[0] and bad[0].endswith('and commit')

def test_check_fails_when_outputs_are_missing(tmp_path):
    p = _nb(tmp_path/'a.ipynb', "print('hi')")
    bad = N.check(p, tmp_path)
    assert len(bad) == 1 and 'cell 1: no outputs committed' in bad[0]

def test_check_ignores_a_varies_cell_and_normalises(tmp_path):
    src = "import time\nprint(time.time())"
    p = _nb(tmp_path/'a.ipynb', src, f"print('{tmp_path}/x at 0x7f3a9c  ')", tags={1: ['varies']})
    N.write(p, tmp_path)
    assert N.check(p, tmp_path) == []
    q = _nb(tmp_path/'b.ipynb', src)
    N.write(q, tmp_path)
    assert len(N.check(q, tmp_path)) == 1                          # untagged, the same cell fails
    assert N.normalise('/tmp/abc/x at 0x7f3a9c  \n\n') == N.normalise('/tmp/pytest-1/y at 0x1234abcd')

def test_check_fails_on_an_erroring_cell(tmp_path):
    p = _nb(tmp_path/'a.ipynb', 'x = 1', "raise ValueError('boom')", tags={2: ['varies']})
    bad = N.check(p, tmp_path)
    assert len(bad) == 1 and 'cell 2 raised' in bad[0] and 'ValueError: boom' in bad[0]
    assert N.write(p, tmp_path)[0] and _outputs(p) == [[], []]    # not written

def test_write_survives_nbdev_clean(tmp_path):
    from execnb.nbio import read_nb, nb2str
    from nbdev.clean import clean_nb
    p = _nb(tmp_path/'a.ipynb', "print('hi')\n2", 'import matplotlib.pyplot as plt\nplt.plot([1, 2]);', tags={2: ['varies']})
    nb = json.loads(p.read_text()); nb['cells'][1]['execution_count'] = 7; nb['cells'][1]['metadata']['collapsed'] = True
    p.write_text(json.dumps(nb))
    N.write(p, tmp_path)
    text = p.read_text()
    cfg = N._cfg()
    nb = read_nb(p); clean_nb(nb, cfg.clear_all, cfg.get('allowed_metadata_keys').split(),
                              cfg.get('allowed_cell_metadata_keys').split(), cfg.clean_ids)
    assert nb2str(nb) == text                                        # what nbdev_clean would write: no change
    cells = json.loads(text)['cells']
    assert cells[1]['execution_count'] is None and cells[1]['metadata'] == {} and cells[2]['metadata'] == {'tags': ['varies']}
    assert [o['output_type'] for o in cells[1]['outputs']] == ['stream', 'execute_result']
    assert 'image/png' in cells[2]['outputs'][-1]['data']

def test_write_skips_cells_edited_while_it_ran(tmp_path):
    p = _nb(tmp_path/'a.ipynb', "print('one')", "print('two')", "print('three')")
    ran = N.execute(p, tmp_path)                                     # then someone edits cell 2 and inserts a cell
    nb = json.loads(p.read_text())
    nb['cells'][2]['source'] = "print('TWO')"
    nb['cells'].insert(1, new_code_cell("print('new')"))
    p.write_text(json.dumps(nb))
    err, warns = N.write(p, executed=ran)
    assert err is None and len(warns) == 2 and 'cell 1:' in warns[0] and 'cell 3:' in warns[1]
    nb = json.loads(p.read_text())
    assert [''.join(c['source']) for c in nb['cells'][1:]] == ["print('new')", "print('one')", "print('TWO')", "print('three')"]
    assert [''.join(''.join(o['text']) for o in c['outputs']) for c in nb['cells'][1:]] == ['', 'one\n', '', 'three\n']

def test_cli_check_exit_status(tmp_path, capsys):
    p = _nb(tmp_path/'a.ipynb', "print('hi')")
    assert N.main(['--check', '--workers', '1', str(p)]) == 1
    assert 'no outputs committed' in capsys.readouterr().out

def test_progress_bars_are_dropped(tmp_path):
    p = _nb(tmp_path/'a.ipynb', "from tqdm import tqdm\nfor _ in tqdm(range(3), desc='epochs'): pass", "import sys\nprint('kept', file=sys.stderr)")
    N.write(p, tmp_path)
    assert _outputs(p) == [[], [{'name': 'stderr', 'output_type': 'stream', 'text': ['kept\n']}]]
    assert N.check(p, tmp_path) == []

def test_paths_into_another_clone_compare_equal():
    # outputs written by --write in one clone (e.g. /work/main) are checked in another (CI's fresh clone)
    a = N.normalise('  File "/work/main/midl/data.py", line 396, in stratified_subset')
    b = N.normalise('  File "/tmp/ci/clone/midl/data.py", line 401, in stratified_subset')
    assert a == b == ['  File "<repo>/midl/data.py", line …, in stratified_subset']
    assert N.normalise('/usr/lib/python3/site-packages/x.py') == ['/usr/lib/python3/site-packages/x.py']
