"""Read nbdev's processed notebooks (`_proc/`, made by `nbdev_proc_nbs`) for Sphinx + MyST-NB.

nbdev writes them for Quarto; this reader turns the few Quarto-only pieces into what MyST-NB understands, without
executing anything:

* the front-matter raw cell (`title`, `description`, `output-file`) becomes a `# title` heading and a lead paragraph;
* `#| echo: false` cells (the `show_doc` cells) keep their output and hide their source (MyST-NB's `remove-input`);
* links into the published site (`doc_host/doc_baseurl/core.html#anchor`) point at the page of this build instead;
* Quarto's link attributes (`[source](...){target="_blank" ...}`) are dropped;
* the index page gets the (hidden) table of contents that lists every other notebook, in file order.
"""
from __future__ import annotations
import json, re
from pathlib import Path
import nbformat, yaml
from nbformat.v4.rwbase import rejoin_lines

PROC = Path(__file__).resolve().parent.parent/'_proc'
SITE = 'https://midl-repro.github.io/midl/'                 # doc_host + doc_baseurl in settings.ini
_ATTRS = re.compile(r'\)\{target="_blank"[^{}]*\}')       # Quarto attributes after nbdev's [source](...) links

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

def _fix_outputs(cell, pages):
    for o in cell.get('outputs', []):
        md = o.get('data', {}).get('text/markdown')
        if md is None: continue
        md = re.sub(r'^\s*---\s*\n', '', ''.join(md))      # show_doc's leading rule: a docutils error inside an output
        o['data']['text/markdown'] = local_links(md, pages)

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
    for c in nb.cells:
        if c.cell_type == 'markdown': c.source = local_links(c.source, pages)
        if c.cell_type != 'code': continue
        _fix_outputs(c, pages)
        lines = c.source.splitlines()
        if any(l.strip() == '#| echo: false' for l in lines):
            c.metadata.setdefault('tags', []).append('remove-input')
        c.source = '\n'.join(l for l in lines if not re.match(r'#\|\s*[\w\-]+:', l))   # Quarto cell options
    if fm.get('output-file') == 'index.html':
        others = [n.removesuffix('.ipynb') for n in sorted(pages.values()) if n != 'index.ipynb']
        nb.cells.append(nbformat.v4.new_markdown_cell('```{toctree}\n:hidden:\n:titlesonly:\n\n' + '\n'.join(others) + '\n```'))
    return nb
