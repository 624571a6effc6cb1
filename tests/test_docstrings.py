"Issue 25: every public entry point says what each parameter is, in `help()` and in `show_doc`, with its shapes or an example."
import inspect, pydoc, re
import pytest
from fastcore.docments import docments
from nbdev.showdoc import show_doc
from midl.core import MIDLayer, MIDChannels, TopKSchedule, tracking, anr
from midl.sparse import SparseMIDLayer
from midl.plan import run_experiment, check_params
from midl.reproduce import reproduce, main
from midl.cache import midl_data
from midl.experiment import sweep, run

ENTRY_POINTS = [MIDLayer, MIDChannels, TopKSchedule, tracking, anr, SparseMIDLayer, run_experiment, check_params, reproduce,
                main, midl_data, sweep, run]

def params(f):
    "The parameters a caller passes (docments reads no comment on **kwargs: the docstring says what they take)."
    return [n for n, p in inspect.signature(f).parameters.items() if p.kind != p.VAR_KEYWORD]

@pytest.mark.parametrize('f', ENTRY_POINTS, ids=lambda f: f.__name__)
def test_every_parameter_is_documented_in_help_and_show_doc(f):
    docs = docments(f)
    missing = [n for n in params(f) if not docs.get(n)]
    assert not missing, f'{f.__name__}: no comment on the signature line of {missing}'
    section = inspect.getdoc(f).split('Parameters\n----------\n')[1]
    text = pydoc.render_doc(f, renderer=pydoc.plaintext)         # what help(f) prints
    for n in params(f): assert re.search(rf'^{n}( :|,|$)', section, re.M) and docs[n].splitlines()[0] in text, (f.__name__, n)
    md = show_doc(f)._repr_markdown_()
    for n in params(f): assert docs[n].splitlines()[0].replace('|', '\\|')[:30] in md.replace('&#39;', "'"), (f.__name__, n)
    assert 'Parameters\n----------' not in md                  # the table shows them; the text does not repeat them

@pytest.mark.parametrize('f', ENTRY_POINTS, ids=lambda f: f.__name__)
def test_docstring_gives_an_example_or_shapes(f):
    doc = inspect.getdoc(f)
    assert 'Example' in doc or 'Input' in doc or 'e.g.' in doc, f.__name__
    if any(p.kind == p.VAR_KEYWORD for p in inspect.signature(f).parameters.values()):
        name = [n for n, p in inspect.signature(f).parameters.items() if p.kind == p.VAR_KEYWORD][0]
        assert 'keyword arguments' in doc or f'**{name}' in doc, f'{f.__name__}: say what **{name} takes'
