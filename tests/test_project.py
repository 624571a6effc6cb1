"Project configuration: nbdev's test flags."
import re
from pathlib import Path
import nbformat
from nbdev.config import get_config
from nbdev import test as nbdev_test

ROOT = Path(__file__).resolve().parent.parent

def test_slow_and_gpu_cells_are_skipped_by_nbdev_test(tmp_path):
    flags = get_config().tst_flags.split()
    assert set(flags) == {'slow', 'gpu'}                      # 'slow|gpu' would be one flag that no cell carries
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in
                ("#| slow\nraise RuntimeError('a slow cell ran')", "#| gpu\nraise RuntimeError('a gpu cell ran')", 'x = 1')]
    nbformat.write(nb, str(tmp_path/'t.ipynb'))
    ok, _ = nbdev_test.test_nb(tmp_path/'t.ipynb', skip_flags=flags)
    assert ok
    ok, _ = nbdev_test.test_nb(tmp_path/'t.ipynb', skip_flags=['slow|gpu'])        # what nbdev did with the old setting
    assert not ok

def _parametrised_notebooks():
    nbs = Path(__file__).resolve().parent.parent/'nbs'
    for p in sorted(nbs.glob('[0-9]*.ipynb')):
        nb = nbformat.read(str(p), as_version=4)
        if any('parameters' in c.metadata.get('tags', []) for c in nb.cells): yield p, nb

def test_experiment_notebooks_hold_no_definitions():
    "Notebooks with a papermill `parameters` cell hold parameters, calls and prose: code they need lives in `midl`."
    found = list(_parametrised_notebooks())
    assert len(found) >= 10                                   # 10–19 and the GPU profile
    bad = [f'{p.name}: {line.strip()}' for p, nb in found for c in nb.cells if c.cell_type == 'code'
           for line in c.source.splitlines() if re.search(r'^\s*(def|class)\s|\blambda\b', line)]
    assert not bad, bad

def test_imports_are_not_mixed_with_code():
    "nbdev's docs pre-processing runs every cell that imports something: such a cell may hold nothing else."
    nbs = Path(__file__).resolve().parent.parent/'nbs'
    bad = []
    for p in sorted(nbs.glob('[0-9]*.ipynb')):
        for i, c in enumerate(nbformat.read(str(p), as_version=4).cells):
            if c.cell_type != 'code' or re.search(r'^#\|\s*export', c.source, re.M): continue
            lines = [l for l in c.source.splitlines() if l.strip() and not l.lstrip().startswith('#')]
            imports = [l for l in lines if re.match(r'(import|from)\s+\S+', l)]
            if imports and len(imports) < len(lines): bad.append(f'{p.name} cell {i}: {imports[0]}')
    assert not bad, f'move these imports into the notebook\'s first import cell: {bad}'

def _skipped_by_nbdev_test(p):
    "Whether `nbdev_test` skips notebook `p`: its frontmatter, read as nbdev reads it, says `skip_exec: true`."
    from fastcore.basics import str2bool
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    nb = NBProcessor(p, procs=FrontmatterProc, process=True).nb
    return str2bool(getattr(nb, 'frontmatter_', {}).get('skip_exec', False))

def test_frontmatter_is_in_raw_cells():
    "nbdev reads a notebook's YAML frontmatter (`skip_exec`, ...) only from a raw cell; in a markdown cell it is silently ignored."
    nbs = Path(__file__).resolve().parent.parent/'nbs'
    bad = [p.name for p in sorted(nbs.glob('*.ipynb')) for c in nbformat.read(str(p), as_version=4).cells[:1]
           if c.cell_type != 'raw' and re.match(r'---\s*\n', c.source)]
    assert not bad, f'make the first cell of these notebooks a raw cell: {bad}'

def test_notebooks_that_nbdev_test_runs_write_only_under_out():
    "Issue 22: 18a's `skip_exec` sat in a markdown cell, so `nbdev_test` (CI) ran it with its committed injected parameters and rewrote results/full. Experiment notebooks are skipped; any other parametrised notebook writes under ../_out/."
    from midl.reproduce import EXPERIMENT_NOTEBOOKS
    nbs = Path(__file__).resolve().parent.parent/'nbs'
    run = [n for n in EXPERIMENT_NOTEBOOKS if not _skipped_by_nbdev_test(nbs/n)]
    assert not run, f'nbdev_test runs these experiment notebooks (they write into results/): {run}'
    bad = []
    for p, nb in _parametrised_notebooks():
        if _skipped_by_nbdev_test(p): continue
        for c in nb.cells:
            if not {'parameters', 'injected-parameters'} & set(c.metadata.get('tags', [])): continue
            bad += [f'{p.name}: {k} = {v!r}' for k, v in re.findall(r'''^(\w+_dir|readme)\s*=\s*['"]([^'"]*)['"]''', c.source, re.M)
                    if not v.startswith('../_out/')]
    assert not bad, f'nbdev_test runs these notebooks with outputs outside _out/: {bad}'

def test_readme_speed_block_is_the_benchmark_report():
    "The README's speed figures are the last `benchmarks/target_bench.py` report's, rounded: no number typed by hand."
    import re, sys
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    import target_bench
    readme, report = (ROOT / 'README.md').read_text(), (ROOT / 'benchmarks/results/target_bench.md').read_text()
    block = readme.split(target_bench.MARKS[0])[1].split(target_bench.MARKS[1])[0]
    rows = [l for l in report.splitlines() if re.match(r'\| \d', l)]
    lat = [float(re.search(r'\| ([\d.]+)x \(', l).group(1)) for l in rows]
    train = [float(re.search(r'\| ([\d.]+)x \([\d.]+-[\d.]+;', l).group(1)) for l in rows]
    assert len(rows) == 2 and 'default' in rows[0]
    said = [float(v) for v in re.findall(r'([\d.]+)× \(\d thread', block)]
    assert said == [round(v, 2) for v in lat] + [round(v, 2) for v in train], (said, lat, train)
    assert report.split(';')[1].split('CPU: ')[1].split(' (')[0] in block   # the CPU it ran on
