"The exported `midl.models` API: every hidden-layer kind on every backbone, built from datasets or descriptions."
import pytest, torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset
import torch.nn.functional as F
from midl.core import midl_layers
from midl.layers import LAYERS, collect_aux_loss, model_anr, hidden_blocks
from midl.models import build_model, describe, default_backbone, LSTMEncoder, cnn

class Toy(Dataset):
    def __init__(self, x, y, **attrs): self.x, self.y = x, y; self.__dict__.update(attrs)
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i], self.y[i]

def toy(kind, n=16):
    g = torch.Generator().manual_seed(0)
    if kind == 'tabular': return Toy(torch.randn(n, 14, generator=g), torch.arange(n) % 2, classes=['<=50K', '>50K'])
    if kind == 'gray': return Toy(torch.randn(n, 1, 28, 28, generator=g), torch.arange(n) % 10, classes=list(range(10)))
    if kind == 'rgb': return Toy(torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % 10, classes=list('abcdefghij'))
    seqs = torch.randint(1, 50, (n, 12), generator=g); seqs[::2, 8:] = 0           # some right padding
    return Toy(seqs, torch.arange(n) % 2, classes=['neg', 'pos'], vocab_size=50)

DATA = ['tabular', 'gray', 'rgb', 'text']
BACKBONE = dict(tabular='mlp', gray='mlp', rgb='cnn', text='lstm')

def batch(ds, n=4): return torch.stack([ds[i][0] for i in range(n)])

@pytest.mark.parametrize('kind', DATA)
@pytest.mark.parametrize('name', list(LAYERS))
def test_every_kind_on_every_backbone(kind, name):
    torch.manual_seed(0)
    ds = toy(kind)
    m = build_model(ds, layer=name, hidden=(16, 12))
    assert default_backbone(describe(ds)) == BACKBONE[kind]
    out = m(batch(ds))
    assert out.shape == (4, len(ds.classes))
    assert [b.out_features if hasattr(b, 'out_features') else b.linear.out_features for b in m.hidden] == [16, 12]
    assert len(hidden_blocks(m)) == 2 and collect_aux_loss(m).shape == ()
    m.eval(); assert torch.equal(m(batch(ds)), m(batch(ds)))          # eval is deterministic for every kind

@pytest.mark.parametrize('kind', DATA)
@pytest.mark.parametrize('name', ['midl', 'switch', 'concrete_dropout', 'loramoe'])
def test_gradients_reach_every_parameter(kind, name):
    torch.manual_seed(0)
    ds = toy(kind, 32)
    m = build_model(ds, layer=name, hidden=(16, 16))
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    x, y = batch(ds, 32), ds.y[:32]
    for _ in range(2):
        opt.zero_grad(); (F.cross_entropy(m(x), y) + collect_aux_loss(m)).backward(); opt.step()
    idle = {f'hidden.{i}.experts.{e}.' for i, b in enumerate(m.hidden) if name == 'switch'   # experts given no token
            for e in range(b.n_experts) if not ((b.last_routing['expert'] == e) & b.last_routing['kept']).any()}
    for n, p in m.named_parameters():
        if any(n.startswith(s) for s in idle): assert p.grad is None or not p.grad.any(), n; continue
        g = p.grad[1:] if n == 'features.embed.weight' else p.grad        # the padding row never learns
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, n
    assert len(idle) < 4 if name == 'switch' else not idle

def test_explicit_descriptions():
    torch.manual_seed(0)
    assert build_model((14,), 'dense', n_classes=2)(torch.randn(3, 14)).shape == (3, 2)
    m = build_model(input_shape=(1, 28, 28), n_classes=10, layer='midl', top_k=0.25)
    assert isinstance(m.features, nn.Flatten) and m.hidden[0].k == 64
    m = build_model(input_shape=(3, 32, 32), n_classes=100, kind='image', layer='switch')
    assert m.hidden[0].in_features == 128 * 4 * 4 and m(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    m = build_model(input_shape=(40,), n_classes=2, kind='text', vocab_size=300, layer='dense')
    assert isinstance(m.features, LSTMEncoder) and m.features.embed.num_embeddings == 300
    assert m(torch.randint(0, 300, (2, 40))).shape == (2, 2)
    assert build_model((3, 32, 32), 'dense', n_classes=10, backbone='mlp').hidden[0].linear.in_features == 3072

def test_dataset_inspection_through_wrappers():
    ds = toy('text')
    d = describe(Subset(Subset(ds, range(10)), [0, 1]))
    assert d == dict(input_shape=(12,), n_classes=2, kind='text', vocab_size=50)
    assert describe(Toy(torch.randn(4, 5), torch.zeros(4), n_classes=3))['n_classes'] == 3
    assert describe(toy('gray'), n_classes=5)['n_classes'] == 5                        # explicit wins

def test_helpful_errors():
    with pytest.raises(ValueError, match='valid kinds: dense, midl'): build_model(toy('tabular'), layer='lora')
    with pytest.raises(ValueError, match='n_classes='): build_model(TensorDataset(torch.randn(4, 5), torch.zeros(4)))
    with pytest.raises(ValueError, match='vocab_size='): build_model(Toy(torch.randint(1, 9, (4, 6)), torch.zeros(4), classes=[0, 1]))
    with pytest.raises(ValueError, match='does not fit'): build_model(toy('rgb'), backbone='lstm')
    with pytest.raises(ValueError, match='too small'): cnn((3, 4, 4), 10)
    with pytest.raises(TypeError, match='takes: p, bias'): build_model(toy('tabular'), layer='dense', top_k=0.5)

def test_comparisons_differ_only_in_the_hidden_blocks():
    ds = toy('rgb')
    models = {n: build_model(ds, layer=n) for n in ('dense', 'midl', 'switch')}
    shapes = {n: [(k, p.shape) for k, p in m.named_parameters() if not k.startswith('hidden')] for n, m in models.items()}
    assert shapes['dense'] == shapes['midl'] == shapes['switch']
    assert len(midl_layers(models['midl'])) == 2 and not midl_layers(models['dense'])
    assert model_anr(models['dense'], batch(ds)) == 1.0
    assert model_anr(models['midl'], batch(ds)) == 0.5                   # top_k = 0.5 by default, eval: exactly k/d
    assert build_model(toy('text'), 'dense').hidden[0].linear.out_features == 128  # LSTM default head width

def test_lstm_reads_the_last_real_token():
    torch.manual_seed(0)
    enc = LSTMEncoder(30, 8, 6)
    right = torch.tensor([[4, 5, 6, 0, 0, 0]])
    torch.testing.assert_close(enc(right), enc(right[:, :3]))
    left = torch.tensor([[0, 0, 0, 4, 5, 6]])
    out, _ = enc.lstm(enc.embed(left))
    torch.testing.assert_close(enc(left), out[:, -1])
    assert enc(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 6)       # all padding: no error

def test_fit_and_runspec_need_no_special_cases():
    from midl.train import fit, evaluate
    from midl.experiment import RunSpec, build
    ds = toy('tabular', 64)
    X = torch.stack([ds[i][0] for i in range(64)])
    for name in LAYERS:
        m = build(RunSpec(layer=name, model_config=dict(hidden=(8,))), ds)
        m, hist = fit(m, ds, epochs=1, batch_size=16, progress=False)
        r = evaluate(m, ds)
        with torch.no_grad(): right = (m.eval()(X).argmax(1) == ds.y).float().mean().item()
        assert len(hist) == 1 and r['n'] == 64 and r['accuracy'] == pytest.approx(right), name
        assert r['anr'] == model_anr(m, X)

def test_hidden_widths_and_f2_hidden_do_not_collide():
    torch.manual_seed(0)
    m = build_model(input_shape=(1, 8, 8), n_classes=10, layer='midl', variant='section_4_4', hidden=64)
    assert [(b.in_features, b.out_features) for b in m.hidden] == [(64, 64)]       # an int: one block of that width
    assert m.hidden[0].f2[0].out_features == 64                                   # f2's width defaults to out_dim
    assert m(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    m = build_model(input_shape=(1, 8, 8), n_classes=10, layer='midl', variant='section_4_4', hidden=(32, 16), f2_hidden=24)
    assert [b.f2[0].out_features for b in m.hidden] == [24, 24] and [b.out_features for b in m.hidden] == [32, 16]
    assert m(torch.randn(3, 1, 8, 8)).shape == (3, 10)
