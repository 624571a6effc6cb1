"The docs site's sidebar sections (docs/nbreader.py) and Quarto's (nbs/sidebar.yml) agree; the reader's rewrites of nbdev output."
import sys
from configparser import ConfigParser
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'docs'))
import nbreader                                                    # noqa: E402

NBS = ROOT/'nbs'
STEMS = sorted(p.stem for p in NBS.glob('*.ipynb'))

def test_every_notebook_is_in_exactly_one_section():
    secs = nbreader.sections(STEMS)
    assert list(secs) == list(nbreader.SECTIONS) == ['Derivation', 'Library', 'Experiments', 'Report']
    listed = [n for ns in secs.values() for n in ns]
    assert sorted(listed) == sorted(set(STEMS) - {'index'}), 'a notebook is missing from the sections, or in two'
    assert len(listed) == len(set(listed))
    assert all(secs.values()), f'empty sections: {[s for s, ns in secs.items() if not ns]}'
    assert nbreader.section('index') is None                        # Home: the site's title links to it

def test_sections_follow_the_rule():
    secs = nbreader.sections(STEMS)
    assert secs['Derivation'] == ['00_math'] and secs['Report'] == ['19_report']
    assert 'architecture' in secs['Library'] and '20_gpu_profile' in secs['Experiments']
    for n in secs['Library']: assert n == 'architecture' or n[:2] < '10', n
    for n in secs['Experiments']: assert '10' <= n[:2] < '99', n
    assert nbreader.section('06z_new') == 'Library' and nbreader.section('21_more') == 'Experiments'
    try: nbreader.section('howto')
    except ValueError as e: assert 'SECTION_OF' in str(e)
    else: raise AssertionError('a notebook with no number and no entry in SECTION_OF got a section')

def test_quarto_sidebar_is_the_sphinx_sections():
    "nbs/sidebar.yml (Quarto) lists the sections the Sphinx index's toctrees list; regenerate: python docs/nbreader.py > nbs/sidebar.yml"
    got = yaml.safe_load((NBS/'sidebar.yml').read_text())
    assert got == nbreader.quarto_sidebar(STEMS), 'nbs/sidebar.yml is stale: python docs/nbreader.py > nbs/sidebar.yml'
    contents = got['website']['sidebar']['contents']
    assert contents[0] == 'index.ipynb'
    assert [c['section'] for c in contents[1:]] == list(nbreader.SECTIONS)

def test_nbdev_leaves_the_sidebar_alone():
    "With custom_sidebar = False, nbdev_docs (and .ci/run docs) would overwrite nbs/sidebar.yml with a flat list."
    cfg = ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini', encoding='utf-8')
    assert cfg['DEFAULT'].getboolean('custom_sidebar')
    quarto = yaml.safe_load((NBS/'_quarto.yml').read_text())
    assert 'sidebar.yml' in quarto['metadata-files']

def test_index_toctrees_have_one_caption_per_section():
    md = nbreader.toctrees(STEMS)
    assert md.count('```{toctree}') == len(nbreader.SECTIONS)
    for s in nbreader.SECTIONS: assert f':caption: {s}\n' in md
    assert '\nindex\n' not in md and '\n00_math\n' in md

SHOW_DOC = ('---\n\n[source](https://github.com/midl-repro/midl/blob/main/midl/core.py#L35){target="_blank" '
            'style="float:right; font-size:smaller"}\n\n### TopKSchedule\n\n>      TopKSchedule (start, end, steps:int,\n'
            ">                    mode:str='linear')\n\n*Anneal `top_k`.\n\nPass it as a layer's `top_k`.*\n\n"
            '|    | **Type** | **Default** | **Details** |\n| -- | -- | -- | -- |\n| start |  |  | top_k at step 0 |')

def test_show_doc_markdown_for_myst():
    out = nbreader.show_doc_md(SHOW_DOC)
    assert out.startswith('<a class="midl-source reference external" href="https://github.com/midl-repro/midl/blob/main/midl/core.py#L35">source</a>')
    assert '### TopKSchedule' in out and '{target=' not in out and not out.lstrip().startswith('---')
    assert "```python\nTopKSchedule (start, end, steps:int,\n              mode:str='linear')\n```" in out
    assert "::::{container} midl-docstring\nAnneal `top_k`.\n\nPass it as a layer's `top_k`.\n::::" in out   # no stray '*'
    assert out.rstrip().endswith('| start |  |  | top_k at step 0 |')
    assert nbreader.show_doc_md('just **Markdown**') == 'just **Markdown**'

def test_progress_bars_show_their_last_state():
    assert nbreader.terminal('\rrun:   0%| 0/9\rrun: 100%| 9/9\n\rdone\r\n') == 'run: 100%| 9/9\ndone\n'

def test_index_links_every_page():
    "The landing page lists every notebook under its section's name; a new notebook gets a line there too."
    import nbformat
    nb = nbformat.read(str(NBS/'index.ipynb'), as_version=4)
    md = '\n'.join(c.source for c in nb.cells if c.cell_type == 'markdown')
    missing = [n for n in STEMS if n != 'index' and f']({n}.ipynb)' not in md]
    assert not missing, f'nbs/index.ipynb ("The pages") links none of: {missing}'
    for s in nbreader.SECTIONS: assert f'**{s}**' in md, s

def test_parameter_cells_are_labelled():
    import json, nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_raw_cell('---\ntitle: T\noutput-file: t.html\n---'),
                nbformat.v4.new_code_cell("scale = 'default'", metadata={'tags': ['parameters']}),
                nbformat.v4.new_code_cell('# Parameters\nscale = "full"', metadata={'tags': ['injected-parameters']})]
    out = nbreader.read(json.dumps(nb), proc=str(ROOT/'nonexistent'))
    kinds = [(c.cell_type, c.source.split('\n')[1] if c.cell_type == 'markdown' and '\n' in c.source else c.source[:8]) for c in out.cells]
    assert [k for k, _ in kinds] == ['markdown', 'markdown', 'code', 'markdown', 'code']
    assert kinds[1][1] == nbreader.PARAM_LABELS['parameters'] and kinds[3][1] == nbreader.PARAM_LABELS['injected-parameters']

def test_math_in_prose_has_single_backslashes():
    "In Markdown math `\\\\times` is a line break and the word 'times' (the page shows '2times'): LaTeX commands take one backslash."
    import re, nbformat
    bad = []
    for p in sorted(NBS.glob('*.ipynb')):
        for i, c in enumerate(nbformat.read(str(p), as_version=4).cells):
            if c.cell_type != 'markdown': continue
            for m in re.finditer(r'\$[^$]*?\\\\[a-zA-Z]+[^$]*?\$', c.source): bad.append(f'{p.name} cell {i}: {m[0][:40]}')
    assert not bad, f'write one backslash before a LaTeX command: {bad}'

def test_show_doc_names_star_parameters():
    md = '---\n\n### f\n\n>      f (x, *args, **kw)\n\n*Doc.*\n\n|    | **Type** | **Details** |\n| -- | -- | -- |\n| x | int | a |\n| args | VAR_POSITIONAL |  |\n| kw | VAR_KEYWORD |  |'
    out = nbreader.show_doc_md(md)
    assert '| \\*args |  |  |' in out and '| \\*\\*kw |  |  |' in out and 'VAR_' not in out
