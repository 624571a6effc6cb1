"The package's layers (nbs/architecture.ipynb): imports point only down, no circle, every module listed, small and from one notebook."
import ast, re, shutil
from pathlib import Path
import nbformat, pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / 'midl'
MAX_LINES = 500

def declared_layers(nb=ROOT / 'nbs/architecture.ipynb'):
    "{module: (layer, position in its layer)} and {module: notebook}, read from the architecture page's table."
    text = '\n'.join(c.source for c in nbformat.read(nb, 4).cells if c.cell_type == 'markdown')
    order, notebooks = {}, {}
    for layer, mods, nbs in re.findall(r'^\| (\d+) \| [^|]+\| ([^|]+)\| ([^|]*)\|$', text, re.M):
        names = re.findall(r'`([\w]+)`', mods)
        for i, m in enumerate(names): order[m] = (int(layer), i)
        for m, n in zip([m for m in names if m != '__init__'], re.findall(r'`([\w]+)`', nbs)): notebooks[m] = n
    return order, notebooks

def modules(pkg=PKG):
    "The package's modules: file stem -> path (`__init__` is the package itself; `_modidx` is nbdev's index)."
    return {p.stem: p for p in sorted(pkg.glob('*.py')) if p.stem != '_modidx'}

def imports(path:Path, mods) -> set:
    "The package modules `path` imports anywhere in it (top level or inside functions), by `ast`: nothing is imported."
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1: names = [node.module.split('.')[0]] if node.module else [a.name for a in node.names]
            elif node.module == 'midl': names = [a.name if a.name in mods else '__init__' for a in node.names]
            elif (node.module or '').startswith('midl.'): names = [node.module.split('.')[1]]
            else: names = []
        elif isinstance(node, ast.Import):
            names = [a.name.split('.')[1] if a.name.startswith('midl.') else '__init__' for a in node.names if a.name.split('.')[0] == 'midl']
        else: continue
        out |= {n for n in names if n in mods}
    return out

def import_graph(pkg=PKG):
    mods = modules(pkg)
    return {m: imports(p, mods) - {m} for m, p in mods.items()}

def upward_edges(graph, order):
    "Edges `a -> b` where b is not below a: a higher layer, or later in a's own layer."
    return sorted(f'midl.{a} -> midl.{b} (layer {order[a][0]} imports layer {order[b][0]})'
                  for a, bs in graph.items() for b in bs if order[b] >= order[a])

def find_cycle(graph):
    "One import circle as a list of modules (first == last), or None."
    state, stack = {}, []
    def visit(m):
        state[m] = 'open'; stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 'open': return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)): return c
        state[m] = 'done'; stack.pop()
    for m in sorted(graph):
        if m not in state and (c := visit(m)): return c

def test_every_module_is_in_the_table_and_every_listed_module_exists():
    order, _ = declared_layers()
    mods = modules()
    assert not set(mods) - set(order), f'modules missing from nbs/architecture.ipynb: {sorted(set(mods) - set(order))}'
    assert not set(order) - set(mods), f'listed in nbs/architecture.ipynb but not in midl/: {sorted(set(order) - set(mods))}'

def test_imports_point_down_and_make_no_circle():
    order, _ = declared_layers()
    graph = import_graph()
    assert upward_edges(graph, order) == []
    assert find_cycle(graph) is None

def test_the_checks_name_an_added_upward_import_and_a_circle(tmp_path):
    "A copy of the package with one upward import added: both checks fail and name the edge."
    pkg = tmp_path / 'midl'; shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns('csrc', '__pycache__'))
    data = pkg / 'data.py'
    data.write_text(data.read_text() + '\ndef _later():\n    from midl.cache import midl_data\n')
    order, _ = declared_layers()
    graph = import_graph(pkg)
    assert upward_edges(graph, order) == ['midl.data -> midl.cache (layer 1 imports layer 1)']
    cycle = find_cycle(graph)
    assert cycle[0] == cycle[-1] and {'data', 'cache'} <= set(cycle), cycle

def test_modules_are_small_and_each_from_its_notebook():
    _, notebooks = declared_layers()
    for m, p in modules().items():
        lines = len(p.read_text().splitlines())
        assert lines <= MAX_LINES, f'midl/{m}.py has {lines} lines (at most {MAX_LINES}): split it by job'
        if m == '__init__': continue
        src = re.search(r'File to edit: \.\./nbs/(\w+)\.ipynb', p.read_text())
        assert src and src.group(1) == notebooks.get(m), f'midl/{m}.py comes from {src and src.group(1)}, the table says {notebooks.get(m)}'
        default_exp = [c.source for c in nbformat.read(ROOT / 'nbs' / f'{src.group(1)}.ipynb', 4).cells if '#| default_exp' in c.source]
        assert default_exp == [f'#| default_exp {m}'], (m, default_exp)
