"""Read nbdev's processed notebooks (`_proc/`, made by `nbdev_proc_nbs`) for Sphinx + MyST-NB.

nbdev writes them for Quarto; this reader turns the few Quarto-only pieces into what MyST-NB understands, without
executing anything:

* the front-matter raw cell (`title`, `description`, `output-file`) becomes a `# title` heading and a lead paragraph;
* `#| echo: false` cells (the `show_doc` cells) keep their output and hide their source (MyST-NB's `remove-input`);
* links into the published site (`doc_host/doc_baseurl/core.html#anchor`) point at the page of this build instead;
* Quarto's link attributes (`[source](...){target="_blank" ...}`) are dropped;
* `show_doc` outputs: the signature becomes a code block, the docstring (italic in Quarto, which breaks on a
  docstring of several paragraphs) a `midl-docstring` container, the source link a `midl-source` link (midl.css);
* in tables, `a ± b` stays on one line (a wide table scrolls rather than wrapping every number);
* experiment notebooks' two parameter cells (defaults, and papermill's injected values) get a line saying which is which;
* stream outputs are shown as a terminal shows them: a progress bar's `\r` updates leave only their last state;
* the index page gets the (hidden) tables of contents of the sidebar, one per section of `SECTIONS`, each in file
  order. `nbs/sidebar.yml` (Quarto's sidebar, `custom_sidebar = True` in settings.ini) lists the same sections:
  `python docs/nbreader.py` prints it from `SECTIONS`, and tests/test_docs.py checks that the two agree.
"""
from __future__ import annotations
import json, re
from pathlib import Path
import nbformat, yaml
from nbformat.v4.rwbase import rejoin_lines
from pygments.lexers import PythonLexer
from pygments.token import Error

PROC = Path(__file__).resolve().parent.parent/'_proc'
SITE = 'https://midl-repro.github.io/midl/'                 # doc_host + doc_baseurl in settings.ini
_ATTRS = re.compile(r'\)\{target="_blank"[^{}]*\}')       # Quarto attributes after nbdev's [source](...) links

# The sidebar's sections, in order. The index page is Home (the site's title links to it) and is in no section.
# A notebook's section: by name in SECTION_OF, else by its number (00-09 the library, 10 and up the experiments).
SECTIONS = ('Derivation', 'Library', 'Experiments', 'Report')
SECTION_OF = {'00_math': 'Derivation', 'architecture': 'Library', '19_report': 'Report'}
HOME = 'index'

def section(stem:str) -> str|None:
    "The sidebar section of notebook `stem` (file name less `.ipynb`); `None` for the index page (Home)."
    if stem == HOME: return None
    if stem in SECTION_OF: return SECTION_OF[stem]
    m = re.match(r'(\d\d)[a-z]?_', stem)
    if m is None: raise ValueError(f'{stem}.ipynb has no sidebar section: name it NN_name or add it to SECTION_OF in docs/nbreader.py')
    return 'Library' if int(m[1]) < 10 else 'Experiments'

def sections(stems) -> dict:
    "{section: [notebook stems in file order]} for the notebooks `stems` (the index page left out), every section listed."
    out = {s: [] for s in SECTIONS}
    for stem in sorted(stems):
        if section(stem) is not None: out[section(stem)].append(stem)
    return out

def quarto_sidebar(stems) -> dict:
    "Quarto's sidebar (nbs/sidebar.yml) with the sections of `sections`: the index page first, then one `section` each."
    return {'website': {'sidebar': {'contents': [f'{HOME}.ipynb'] + [
        {'section': s, 'contents': [f'{n}.ipynb' for n in ns]} for s, ns in sections(stems).items() if ns]}}}

def toctrees(stems) -> str:
    "The index page's hidden tables of contents: one per section, captioned, which Furo's sidebar shows as sections."
    return '\n\n'.join(f'```{{toctree}}\n:hidden:\n:titlesonly:\n:caption: {s}\n\n' + '\n'.join(ns) + '\n```'
                       for s, ns in sections(stems).items() if ns)

PARAM_LABELS = {                                           # experiment notebooks: papermill's parameter cells
    'parameters': 'Parameters, with their defaults (papermill\'s `-p` sets them for a run):',
    'injected-parameters': 'The parameters of the run whose outputs this page shows (injected by papermill):'}

def front_matter(nb) -> dict:
    "The YAML of a leading `---` raw cell (what nbdev's processing writes for Quarto); `{}` if there is none."
    c = nb.cells[0] if nb.cells else None
    if c is None or c.cell_type != 'raw' or not c.source.lstrip().startswith('---'): return {}
    return yaml.safe_load(c.source.strip().strip('-')) or {}

def page_map(proc:Path=PROC) -> dict:
    "`output-file` (e.g. 'core.html') of each processed notebook -> its file name (e.g. '01_core.ipynb')."
    out = {}
    for p in sorted(proc.glob('*.ipynb')):
        fm = front_matter(_load(p.read_text(encoding='utf-8')))
        out[fm.get('output-file', p.stem + '.html')] = p.name
    return out

def _local(m, pages):
    page, anchor = pages.get(m[1]), (m[2] or '').replace('.', '')   # MyST's anchor of '### A.b' is 'ab'
    if anchor.startswith('#_'): anchor = ''                          # private names have no section of their own
    return page + anchor if page else m[0]

def local_links(text:str, pages:dict) -> str:
    "Links into the published site as links to this build's notebooks; Quarto link attributes removed."
    text = re.sub(re.escape(SITE) + r'([\w\-]+\.html)(#[\w.\-]+)?', lambda m: _local(m, pages), text)
    return _ATTRS.sub(')', text)

_SHOW_DOC = re.compile(r'\s*---\s*\n+(?:\[source\]\((?P<src>[^)\s]+)\)(?:\{[^{}]*\})?\n+)?(?P<head>#{1,6} [^\n]+)\n+'
                       r'(?P<sig>(?:>[^\n]*(?:\n|$))*)(?P<rest>.*)', re.S)
_TABLE = re.compile(r'^\|[^\n]*\|\s*\n\|\s*-', re.M)     # the parameter table docments adds after the docstring

def _lang(code:str) -> str:
    "'python' when Pygments lexes `code` as Python without an error token (Sphinx warns, and -W fails, on one), else 'text'."
    return 'text' if any(t is Error for t, _ in PythonLexer().get_tokens(code)) else 'python'

def show_doc_md(md:str) -> str:
    "nbdev's `show_doc` Markdown (written for Quarto) as MyST: see the module's docstring. Other Markdown is returned as is."
    m = _SHOW_DOC.fullmatch(md)
    if m is None: return md
    out = [f'<a class="midl-source reference external" href="{m["src"]}">source</a>'] if m['src'] else []
    out.append(m['head'])
    sig = [re.sub(r'^> ? {0,5}', '', l) for l in m['sig'].rstrip('\n').split('\n')] if m['sig'].strip() else []
    if sig:
        code = '\n'.join(sig)
        out.append(f'```{_lang(code)}\n{code}\n```')
    rest = m['rest'].strip()
    t = _TABLE.search(rest)
    doc, table = (rest[:t.start()].strip(), rest[t.start():]) if t else (rest, '')
    if len(doc) > 1 and doc.startswith('*') and doc.endswith('*') and not doc.startswith('**'): doc = doc[1:-1].strip()
    if doc: out.append(f'::::{{container}} midl-docstring\n{doc}\n::::')
    if table:                                                  # docments' type of *args / **kwargs: their stars
        table = re.sub(r'^\| (\w+) \| VAR_KEYWORD \|', r'| \\*\\*\1 |  |', table, flags=re.M)
        out.append(re.sub(r'^\| (\w+) \| VAR_POSITIONAL \|', r'| \\*\1 |  |', table, flags=re.M))
    return '\n\n'.join(out) + '\n'

def terminal(text:str) -> str:
    "`text` as a terminal shows it: on each line, what follows its last carriage return (a progress bar's last state)."
    return '\n'.join(([p for p in l.split('\r') if p] or [''])[-1] for l in text.split('\n'))

def _fix_outputs(cell, pages):
    outs, merged = cell.get('outputs', []), []
    for o in outs:                                             # consecutive stream outputs of one stream: one output
        if o.get('output_type') == 'stream' and merged and merged[-1].get('output_type') == 'stream' and merged[-1]['name'] == o['name']:
            merged[-1]['text'] = ''.join(merged[-1]['text']) + ''.join(o['text'])
        else: merged.append(o)
    for o in merged:
        if o.get('output_type') == 'stream':
            o['text'] = terminal(''.join(o['text']))
            continue
        html = o.get('data', {}).get('text/html')
        if html is not None and '<table' in ''.join(html): o['data']['text/html'] = ''.join(html).replace(' ± ', '&nbsp;±&nbsp;')
        md = o.get('data', {}).get('text/markdown')
        if md is None: continue
        md = show_doc_md(''.join(md))
        md = re.sub(r'^(\|.*)$', lambda r: r[1].replace(' ± ', '\u00a0±\u00a0'), md, flags=re.M)   # '97.6 ± 0.4' on one line
        md = re.sub(r'^\s*---\s*\n', '', md)                  # a leading rule: a docutils error inside an output
        o['data']['text/markdown'] = local_links(md, pages)
    if outs: cell['outputs'] = merged

def _load(text:str) -> nbformat.NotebookNode:
    "The notebook in `text`, less nbdev's private `has_sd` cell key (not in the nbformat schema), with cell ids."
    d = json.loads(text)
    for c in d['cells']: c.pop('has_sd', None)
    nb = rejoin_lines(nbformat.from_dict(d))                   # list-of-lines sources as strings
    nb.nbformat, nb.nbformat_minor = 4, max(nb.get('nbformat_minor', 0), 5)
    for i, c in enumerate(nb.cells): c.setdefault('id', f'cell-{i}')
    return nb

def read(text:str, proc:str|None=None) -> nbformat.NotebookNode:
    "MyST-NB reader for one processed notebook (the text of its .ipynb file)."
    nb, pages = _load(text), page_map(Path(proc) if proc else PROC)
    fm = front_matter(nb)
    if fm:
        lead = f"# {fm.get('title', '')}\n\n{fm['description']}" if fm.get('description') else f"# {fm.get('title', '')}"
        nb.cells[0] = nbformat.v4.new_markdown_cell(lead)
    labelled = []
    for c in nb.cells:                                         # say what each of papermill's two parameter cells is
        tags = c.get('metadata', {}).get('tags', [])
        label = next((PARAM_LABELS[t] for t in tags if t in PARAM_LABELS), None) if c.cell_type == 'code' else None
        if label: labelled.append(nbformat.v4.new_markdown_cell(f'::::{{container}} midl-cell-label\n{label}\n::::'))
        labelled.append(c)
    nb.cells = labelled
    for c in nb.cells:
        if c.cell_type == 'markdown': c.source = local_links(c.source, pages)
        if c.cell_type != 'code': continue
        _fix_outputs(c, pages)
        lines = c.source.splitlines()
        if any(l.strip() == '#| echo: false' for l in lines):
            c.metadata.setdefault('tags', []).append('remove-input')
        c.source = '\n'.join(l for l in lines if not re.match(r'#\|\s*[\w\-]+:', l))   # Quarto cell options
    if fm.get('output-file') == 'index.html':
        nb.cells.append(nbformat.v4.new_markdown_cell(toctrees(n.removesuffix('.ipynb') for n in pages.values())))
    return nb

if __name__ == '__main__':                                     # print nbs/sidebar.yml from SECTIONS
    nbs = Path(__file__).resolve().parent.parent/'nbs'
    print('# Quarto\'s sidebar (settings.ini: custom_sidebar = True, so nbdev leaves this file alone). Written by\n'
          '# `python docs/nbreader.py > nbs/sidebar.yml` from the sections in docs/nbreader.py, which the Sphinx site uses too.')
    print(yaml.safe_dump(quarto_sidebar(p.stem for p in nbs.glob('*.ipynb')), sort_keys=False), end='')
