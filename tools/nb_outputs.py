"""Committed outputs of the library notebooks: write them, or check that they match a re-execution.

Library notebooks are every notebook in `nbs/` except the experiment notebooks (`10_*` … `19_*`, `18a_*`,
`20_gpu_profile`, which carry the outputs of a real run). They are executed the way `nbdev_test` executes them:
execnb's `CaptureShell`, working directory `nbs/`, the repo root on `sys.path`, `IN_TEST=1`, and cells flagged with a
`settings.ini` `tst_flags` flag (`#| slow`, `#| gpu`), cells with `#| eval: false` and `nbdev_export()` cells skipped
(they keep no outputs). Each notebook runs in a fresh process (`--workers` at once, default 2) forked from a server
that has imported torch and the notebook machinery, so warnings printed once per process do not depend on which
notebook ran first, and no notebook pays for those imports.

    .venv/bin/python tools/nb_outputs.py --write [NB ...]   # default: every library notebook
        Executes an in-memory copy of each notebook; then re-reads the notebook from disk and copies the outputs only
        into code cells whose source is still the executed source (a cell edited meanwhile gets no outputs and a
        warning), cleans it as `nbdev_clean` does (no execution counts, only allowed metadata) and replaces the file
        atomically. A notebook with an erroring cell is not written.
    .venv/bin/python tools/nb_outputs.py --check [NB ...]
        Executes in-memory copies (writes nothing under nbs/) and exits 1, with one line per difference, when a
        cell's committed outputs differ from the re-execution, when committed outputs are missing, or when a cell
        raises. Compared: the text of stream, error and `text/*` outputs after `normalise` (the repo's absolute path,
        memory addresses `0x…`, temporary paths, IPython cell ids `<ipython-input-N-…>`, line numbers in tracebacks
        and in show_doc's `[source](….py#LN)` links, trailing whitespace and blank lines); images and other non-text
        data only for presence. Cells tagged `varies` (timings, speed, what the data cache holds, ...) must run without
        error but their outputs are not compared.
Both modes drop tqdm progress-bar lines from the outputs (a cell whose only output was a bar has none).
"""
import argparse, difflib, json, os, re, sys, tempfile, time, traceback
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT_RE = re.compile(r'^(1\d|20)[a-z]?_')            # 10_table8 … 19_report, 18a_*, 20_gpu_profile
VARIES = 'varies'

def library_notebooks(nbs=ROOT/'nbs'):
    "Every notebook in `nbs` that is not an experiment notebook."
    return [p for p in sorted(Path(nbs).glob('*.ipynb')) if not EXPERIMENT_RE.match(p.name) and p.name[0] not in '_.']

def _cfg(): from nbdev.config import get_config; return get_config(path=ROOT)

def _skipped(cell, flags):
    "Whether `nbdev_test` skips `cell` (nbdev.test.test_nb's `_no_eval`)."
    if cell.cell_type != 'code' or 'nbdev_export'+'(' in cell.source: return True
    direc = getattr(cell, 'directives_', {}) or {}
    if direc.get('eval:', [''])[0].lower() == 'false': return True
    return bool(set(flags) & direc.keys())

def execute(path, wd=None, flags=None):
    "Execute a copy of notebook `path` in `wd` (default: its folder) as nbdev_test does: {cell index: (source, outputs)}, error."
    from fastcore.basics import str2bool
    from fastcore.xtras import working_directory
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell, format_exc
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    path = Path(path).resolve(); wd = Path(wd or path.parent)
    flags = _cfg().tst_flags.split() if flags is None else flags
    nb = read_nb(path)
    for i, c in enumerate(nb.cells): c.orig_, c.src_ = i, c.source   # NBProcessor strips directives and may drop cells
    nb = NBProcessor(nb=nb, procs=FrontmatterProc, process=True).nb
    res = {c.orig_: (c.src_, []) for c in nb.cells if hasattr(c, 'orig_') and c.cell_type == 'code'}
    if str2bool(getattr(nb, 'frontmatter_', {}).get('skip_exec', False)): return res, None
    os.environ['IN_TEST'] = '1'
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    k = CaptureShell(path)
    with working_directory(wd):
        for c in nb.cells:
            if _skipped(c, flags): continue
            k._cell_idx = c.idx_ + 1
            res[c.orig_] = (c.src_, _no_bars(json.loads(json.dumps(list(k.run(c.source))))))
            if k.exc:
                tb = [l.strip() for l in ''.join(format_exc(k.exc)).splitlines() if l.strip(' ^~')]
                return res, f'cell {c.orig_} raised: ' + ' | '.join(tb[-4:])
    return res, None

_BAR = re.compile(r'\d+%\|.*\| *[\d.]+\w*/[\d.]+\w* \[')          # a tqdm progress bar's line

def _no_bars(outputs):
    "`outputs` without progress-bar lines (never cheap, never deterministic); a stream left blank is dropped."
    for o in outputs:
        if o['output_type'] == 'stream' and any(_BAR.search(l) for l in o['text']):
            o['text'] = [l for l in o['text'] if not _BAR.search(l)]
    return [o for o in outputs if o['output_type'] != 'stream' or ''.join(o['text']).strip()]

def _clean_outputs(outputs):
    "The outputs as `nbdev_clean` leaves them (no execution counts, no `at 0x…` ids, images stripped)."
    from fastcore.basics import AttrDict
    from nbdev.clean import _clean_cell_output
    c = AttrDict(outputs=json.loads(json.dumps(outputs)))
    _clean_cell_output(c, _cfg().clean_ids)
    return c['outputs']

def _tags(cell): return (cell.get('metadata') or {}).get('tags', [])

def write(path, wd=None, flags=None, executed=None):
    "Execute notebook `path` and store its outputs in it (race-safe, atomic). Returns (error or None, warnings)."
    from execnb.nbio import read_nb, nb2str
    from nbdev.clean import clean_nb
    path = Path(path)
    res, err = executed or execute(path, wd, flags)
    if err: return err, []
    nb = read_nb(path)                                                   # re-read: others may have edited it meanwhile
    ran = [res[i] for i in sorted(res)]
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == 'code']
    sm = difflib.SequenceMatcher(None, [s for s, _ in ran], [c.source for _, c in code], autojunk=False)
    match = {b + k: ran[a + k][1] for a, b, n in sm.get_matching_blocks() for k in range(n)}
    warns = []
    for j, (i, c) in enumerate(code):
        c.outputs, c.execution_count = _clean_outputs(match.get(j, [])), None
        if j not in match: warns.append(f'{_rel(path)} cell {i}: its source changed while it ran, so it gets no outputs; run --write again')
    cfg = _cfg()
    clean_nb(nb, cfg.clear_all, cfg.get('allowed_metadata_keys').split(), cfg.get('allowed_cell_metadata_keys').split(), cfg.clean_ids)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    with os.fdopen(fd, 'w', encoding='utf-8') as f: f.write(nb2str(nb))
    os.replace(tmp, path)
    return None, warns

_CLONE = re.compile(r'(?<![\w<])/[^\s\'"<>]*?/(?=(midl|nbs|tests)/[\w./-]+\.(py|ipynb)\b)')   # '/any/clone/' before midl/x.py
_NORM = [(re.compile(r'0x[0-9a-fA-F]{4,}'), '0x…'),                                      # memory addresses
         (re.compile(r'(/private)?(/tmp|/var/folders|%s)/[^\s\'"]*' % re.escape(tempfile.gettempdir())), '<tmp>'),
         (re.compile(r'<ipython-input-\d+-[0-9a-f]+>'), '<ipython-input>'),                  # ids of IPython cells
         (re.compile(r'(File "[^"]*", line )\d+'), r'\1…'),                                    # traceback line numbers
         (re.compile(r'(\.py#L)\d+\)'), r'\1…)')]                                             # show_doc's [source] links

def normalise(text):
    "Lines of an output's text as compared: the repo's path, memory addresses, temporary paths, IPython cell ids, traceback line numbers and show_doc source-line anchors replaced, trailing whitespace and blank lines dropped."
    text = text.replace(str(ROOT), '<repo>')
    text = _CLONE.sub('<repo>/', text)                          # a path into another clone of the repo (where --write ran)
    for pat, sub in _NORM: text = pat.sub(sub, text)
    return [l.rstrip() for l in text.rstrip().splitlines()]

def output_lines(outputs):
    "The lines `check` compares for a cell's outputs."
    j = lambda t: ''.join(t) if isinstance(t, list) else str(t)
    lines = []
    for o in outputs:
        t = o.get('output_type')
        if t == 'stream': lines += [f'[{o.get("name")}]'] + normalise(j(o.get('text', '')))
        elif t == 'error': lines += [f'[error] {o.get("ename")}: {o.get("evalue")}']
        else:
            for k, v in sorted((o.get('data') or {}).items()):
                lines += [f'[{k}]'] + (normalise(j(v)) if k.startswith('text/') else [])
    return lines

def check(path, wd=None, flags=None, executed=None):
    "One line per cell of notebook `path` whose committed outputs differ from a re-execution (or that raises)."
    from execnb.nbio import read_nb
    path = Path(path)
    nb = read_nb(path)
    res, err = executed or execute(path, wd, flags)
    fix = f'run .venv/bin/python tools/nb_outputs.py --write {_rel(path)} and commit'
    if err: return [f'{_rel(path)} {err}']
    bad = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'code' or VARIES in _tags(c) or i not in res: continue
        src, outs = res[i]
        if src != c.source: bad.append(f'{_rel(path)} cell {i}: the notebook changed while it ran; run --check again'); continue
        old, new = output_lines(c.get('outputs', [])), output_lines(_clean_outputs(outs))
        if old == new: continue
        k = next((k for k, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        got = lambda ls: repr(ls[k][:100]) if k < len(ls) else '(nothing)'
        what = 'no outputs committed' if not old else f'committed line {k + 1} {got(old)}, re-executed {got(new)}'
        bad.append(f'{_rel(path)} cell {i}: {what}; {fix}')
    return bad

def _rel(p):
    p = Path(p).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)

def _run(path):
    "Worker: execute `path` in its folder, timed; errors outside the notebook become its error."
    t = time.time()
    try: res, err = execute(path)
    except Exception: res, err = {}, 'could not be executed: ' + traceback.format_exc().strip().splitlines()[-1]
    return res, err, time.time() - t

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument('--write', action='store_true', help='execute the notebooks and store their outputs in them')
    g.add_argument('--check', action='store_true', help="fail when committed outputs differ from a re-execution")
    ap.add_argument('notebooks', nargs='*', help='default: every library notebook')
    ap.add_argument('--workers', type=int, default=2, help='notebooks executed at once, each in a fresh process')
    a = ap.parse_args(argv)
    os.environ.setdefault('PYTHONHASHSEED', '0'); os.environ.setdefault('MPLBACKEND', 'Agg')   # as .ci/run
    nbs = [Path(p).resolve() for p in a.notebooks] or library_notebooks()
    t0, problems, n_out = time.time(), [], 0
    ctx = mp.get_context('forkserver')                                # each notebook forks from a server that has the
    ctx.set_forkserver_preload(['torch', 'matplotlib.pyplot', 'execnb.shell', 'nbdev.process'])  # slow imports done
    with ProcessPoolExecutor(max(a.workers, 1), mp_context=ctx, max_tasks_per_child=1) as ex:
        for p, (res, err, dt) in zip(nbs, ex.map(_run, nbs)):
            if a.write:
                err, warns = write(p, executed=(res, err))
                for w in warns: print('warning:', w)
                bad = [f'{_rel(p)} {err}'] if err else []
            else: bad = check(p, executed=(res, err))
            problems += bad; n = sum(1 for _, o in res.values() if o); n_out += n
            print(f'{"FAILED" if bad else "ok"}  {_rel(p)}  {dt:.1f}s  ({n} cells with outputs)', flush=True)
    for l in problems: print(l)
    print(f'{len(nbs)} notebooks, {n_out} cells with outputs, {len(problems)} problems, {time.time() - t0:.0f}s')
    return 1 if problems else 0

if __name__ == '__main__': sys.exit(main())
