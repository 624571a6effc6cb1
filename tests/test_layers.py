"The exported `midl.layers` API: one interface for every hidden-layer kind, and each kind's defining property."
import math, pytest, torch
from torch import nn
import torch.nn.functional as F
from midl.core import MIDLayer, tracking, anr, midl_layers
from midl.math import topk_mask
from midl.layers import (LAYERS, make_layer, layer_options, collect_aux_loss, model_anr, hidden_blocks, load_balancing_loss,
                         Dense, MIDBlock, ConcreteDropout, DyReLU, SwitchFFN, LoRAMoE, RandomTopK, FixedAlpha,
                         F1Only, F2Only, GumbelGate)

KINDS = list(LAYERS)
GATING = ['midl', 'random_topk', 'fixed_alpha', 'gumbel', 'f1_only', 'f2_only']

def test_registry_names():
    assert set(KINDS) == {'dense', 'midl', 'concrete_dropout', 'dyrelu', 'switch', 'loramoe', 'random_topk',
                          'fixed_alpha', 'f1_only', 'f2_only', 'gumbel', 'sparse_midl'}

def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError) as e: make_layer('moe', 4, 4)
    for k in KINDS: assert k in str(e.value)

def test_wrong_option_lists_accepted_ones():
    with pytest.raises(TypeError, match="takes: p, bias"): make_layer('dense', 4, 4, top_k=0.5)
    assert {'top_k', 'variant', 'alpha_dropout'} <= set(layer_options('fixed_alpha'))

@pytest.mark.parametrize('name', KINDS)
@pytest.mark.parametrize('shape', [(5, 12), (2, 3, 12)])
def test_shapes_and_aux_scalar(name, shape):
    torch.manual_seed(0)
    b = make_layer(name, 12, 7)
    y = b(torch.randn(*shape))
    assert y.shape == shape[:-1] + (7,)
    if name != 'dyrelu': assert (y >= 0).all()                     # ends with its ReLU (DyReLU's pieces may go negative)
    assert b.aux_loss().shape == () and torch.isfinite(b.aux_loss())

@pytest.mark.parametrize('name', KINDS)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    b = make_layer(name, 10, 8)
    opt = torch.optim.SGD(b.parameters(), lr=0.1)
    x = torch.randn(64, 10)
    for _ in range(2):                                             # LoRA's B = 0 start: A and the router learn from step 2
        opt.zero_grad(); (b(x).pow(2).mean() + b.aux_loss()).backward(); opt.step()
    for n, p in b.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n

@pytest.mark.parametrize('name', KINDS)
def test_eval_is_deterministic(name):
    torch.manual_seed(0)
    b = make_layer(name, 10, 8).eval()
    x = torch.randn(6, 10)
    assert torch.equal(b(x), b(x))

@pytest.mark.parametrize('name', ['dense', 'concrete_dropout', 'midl', 'random_topk', 'gumbel'])
def test_training_is_stochastic(name):
    torch.manual_seed(0)
    b = make_layer(name, 10, 8).train()
    x = torch.randn(6, 10)
    assert not torch.equal(b(x), b(x))

def test_dense_is_relu_then_dropout():
    torch.manual_seed(0)
    d, x = Dense(6, 5, p=0.25), torch.randn(50, 6)
    y, a = d(x), F.relu(d.linear(x))
    kept = y != 0
    torch.testing.assert_close(y[kept], a[kept] / 0.75)
    torch.testing.assert_close(d.eval()(x), a)

def test_midl_block_is_midlayer_plus_relu():
    torch.manual_seed(0)
    for v in ('appendix_a', 'section_4_4'):
        b = make_layer('midl', 8, 6, top_k=3, variant=v).eval()
        assert isinstance(b, MIDLayer) and b.variant == v and b.k == 3
        x = torch.randn(4, 8)
        torch.testing.assert_close(b(x), F.relu(MIDLayer.forward(b, x)))

def test_concrete_dropout_regulariser_equals_formula():
    torch.manual_seed(0)
    cd = ConcreteDropout(7, 3, weight_regulariser=1e-3, dropout_regulariser=1e-2, init_p=0.3)
    p, W = 0.3, cd.linear.weight.detach()
    expected = 1e-3 * (W ** 2).sum() / (1 - p) + 1e-2 * 7 * (p * math.log(p) + (1 - p) * math.log(1 - p))
    torch.testing.assert_close(cd.aux_loss(), expected)
    torch.testing.assert_close(cd.aux_loss(), cd.regulariser())

def test_concrete_dropout_mask_and_rate():
    torch.manual_seed(0)
    cd, x = ConcreteDropout(6, 4, init_p=0.2), torch.randn(3, 6)
    torch.manual_seed(5); y = cd(x)
    torch.manual_seed(5); u = torch.rand_like(x)
    z = torch.sigmoid((math.log(0.2 / 0.8) + torch.log(u) - torch.log(1 - u)) / 0.1)
    torch.testing.assert_close(y, F.relu(cd.linear(x * (1 - z) / 0.8)), atol=1e-4, rtol=1e-4)
    opt = torch.optim.SGD(cd.parameters(), lr=20.)
    for _ in range(30):
        opt.zero_grad(); (cd(torch.randn(32, 6)).mean() + cd.aux_loss()).backward(); opt.step()
    assert cd.p_logit.grad.abs() > 0                                  # the rate is learned
    cd.eval(); torch.testing.assert_close(cd(x), F.relu(cd.linear(x)))

def test_concrete_dropout_rate_gradient_by_hand():
    "p = sigmoid(rho): dR/drho = lambda_w ||W||^2 p/(1-p) + lambda_p K rho p(1-p)."
    torch.manual_seed(0)
    cd, rho = ConcreteDropout(6, 4, weight_regulariser=1e-3, dropout_regulariser=1e-2).double(), math.log(0.3 / 0.7)
    with torch.no_grad(): cd.p_logit.fill_(rho)
    w2 = cd.linear.weight.detach().pow(2).sum().item()
    g, = torch.autograd.grad(cd.aux_loss(), cd.p_logit)
    assert g.item() == pytest.approx(1e-3 * w2 * 0.3 / 0.7 + 1e-2 * 6 * rho * 0.3 * 0.7, rel=1e-9)

def test_dyrelu_is_max_of_its_pieces():
    torch.manual_seed(0)
    dy, x = DyReLU(9, 5, k=3), torch.randn(11, 9)
    z = dy.linear(x); a, b = dy.coefficients(z)
    assert a.shape == b.shape == (11, 3, 5)
    pieces = torch.stack([a[:, k] * z + b[:, k] for k in range(3)])
    torch.testing.assert_close(dy(x), pieces.max(0).values)
    with torch.no_grad(): dy.hyper[-1].weight.zero_(); dy.hyper[-1].bias.zero_()
    torch.testing.assert_close(dy(x), F.relu(dy.linear(x)))
    r = torch.zeros(2, 3, 5)                                            # logits of (Delta a, Delta b) for pieces 1..3
    r[0, 0], r[0, 2], r[1, 1] = math.log(3), -math.log(3), math.log(3)   # Delta = 2 sigma(r) - 1 = +-1/2 there
    with torch.no_grad(): dy.hyper[-1].bias.copy_(r.flatten())
    a, b = dy.coefficients(z)
    torch.testing.assert_close(a, torch.tensor([1.5, 0., -0.5])[:, None].expand(11, 3, 5))   # alpha = (1, 0, 0) + Delta a
    torch.testing.assert_close(b, torch.tensor([0., 0.25, 0.])[:, None].expand(11, 3, 5))    # 0.5 * Delta b
    torch.testing.assert_close(dy(x), torch.maximum(torch.maximum(1.5 * z, torch.full_like(z, 0.25)), -0.5 * z))

def _hand_routed_switch(in_f=4, out_f=4):
    sw = SwitchFFN(in_f, out_f, n_experts=3, capacity_factor=1.0)
    with torch.no_grad(): sw.router.weight.copy_(5 * torch.eye(3, in_f))
    x = torch.tensor([[1., 0, 0, 0]] * 4 + [[0, 1., 0, 0]] * 2)
    return sw, x

def test_switch_drops_tokens_beyond_capacity():
    torch.manual_seed(0)
    sw, x = _hand_routed_switch()
    y = sw(x)
    assert sw.capacity(6) == 2
    assert sw.last_routing['expert'].tolist() == [0, 0, 0, 0, 1, 1]
    assert sw.last_routing['kept'].tolist() == [True, True, False, False, True, True]
    torch.testing.assert_close(y[2:4], F.relu(x[2:4]))                 # dropped tokens pass through the residual
    p = torch.softmax(x @ sw.router.weight.T, -1)
    torch.testing.assert_close(y[4:], F.relu(x[4:] + p[4:, 1:2] * sw.experts[1](x[4:])))
    sw2, _ = _hand_routed_switch(4, 3)                                 # width change: learned residual map
    torch.manual_seed(0); sw2(x)
    assert isinstance(sw2.skip, nn.Linear)
    torch.testing.assert_close(sw2(x)[2:4], F.relu(sw2.skip(x[2:4])))

def test_switch_aux_loss_equals_formula():
    sw, x = _hand_routed_switch()
    sw(x)
    p = torch.softmax(x @ sw.router.weight.T, -1)
    f = torch.tensor([4., 2., 0.]) / 6                                 # routed shares (before capacity)
    torch.testing.assert_close(sw.aux_loss(), 0.01 * 3 * (f * p.mean(0)).sum())
    uniform = load_balancing_loss(torch.full((9, 3), 1 / 3), torch.arange(9)[:, None] % 3, 3)
    torch.testing.assert_close(uniform, torch.tensor(1.))

def test_switch_eval_capacity():
    sw, x = _hand_routed_switch()
    sw.eval(); sw(x)
    assert sw.capacity(6) == 4 and sw.last_routing['kept'].all()

def test_loramoe_routing_and_formula():
    torch.manual_seed(0)
    lm, x = LoRAMoE(6, 5, n_experts=4, rank=3, top_k=2), torch.randn(7, 6)
    torch.testing.assert_close(lm(x), F.relu(lm.base(x)))             # LoRA start: B = 0
    with torch.no_grad(): lm.B.normal_()
    probs, chosen, G = lm.gates(x)
    assert ((G > 0).sum(1) == 2).all() and torch.allclose(G.sum(1), torch.ones(7))
    top = probs.topk(2, -1).indices
    assert torch.equal(chosen.sort(1).values, top.sort(1).values)
    z = torch.stack([lm.base(x[t]) + sum(G[t, e] * (lm.B[e] @ (lm.A[e] @ x[t])) for e in range(4)) for t in range(7)])
    torch.testing.assert_close(lm(x), F.relu(z), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lm.aux_loss(), 0.01 * load_balancing_loss(probs, chosen, 4))

def test_random_topk_ignores_the_input():
    torch.manual_seed(0)
    rt = RandomTopK(8, 6, top_k=2, alpha_dropout=0., mask='step')
    assert rt.alpha_proj is None and [n for n, _ in rt.named_parameters()] == ['f1.weight', 'f1.bias', 'f2.weight', 'f2.bias']
    x1, x2 = torch.randn(50, 8), 100 * torch.randn(50, 8)
    torch.manual_seed(3); m1 = rt.gate(x1)
    torch.manual_seed(3); m2 = rt.gate(x2)
    assert torch.equal(m1, m2) and (m1.sum(1) == 2).all() and set(m1.unique().tolist()) == {0., 1.}
    assert m1.sum(0).min() > 0                                         # every neuron gets picked by some row
    rt.eval(); assert torch.equal(rt.gate(x1), rt.gate(x2))
    m = rt.gate(x1)
    torch.testing.assert_close(rt(x1), F.relu(m * rt.f1(x1) + (1 - m) * rt.f2(x1)))

def test_fixed_alpha_on_selected_neurons():
    torch.manual_seed(0)
    fa, x = FixedAlpha(8, 6, top_k=3, alpha_dropout=0.), torch.randn(9, 8)
    sel = topk_mask(torch.sigmoid(fa.alpha_proj(x)), 3).bool()
    y = fa(x)
    torch.testing.assert_close(y[sel], F.relu(0.5 * fa.f1(x) + 0.5 * fa.f2(x))[sel])
    torch.testing.assert_close(y[~sel], F.relu(fa.f2(x))[~sel])
    assert set(fa.gate(x).unique().tolist()) == {0., 0.5}
    y.sum().backward(); assert fa.alpha_proj.weight.grad.abs().sum() > 0

@pytest.mark.parametrize('cls,path', [(F1Only, 'f1'), (F2Only, 'f2')])
def test_one_path_ablations(cls, path):
    torch.manual_seed(0)
    b, x = cls(8, 6, top_k=0.5, variant='section_4_4'), torch.randn(4, 8)
    torch.testing.assert_close(b(x), F.relu(getattr(b, path)(x)))
    names = {n.split('.')[0] for n, _ in b.named_parameters()}
    assert names == {path}                                             # no gate, no second path
    with tracking(b): b(x)
    assert anr(b) == 1.0

def test_gumbel_gate():
    torch.manual_seed(0)
    gg, x = GumbelGate(8, 6, top_k=3, alpha_dropout=0.), torch.randn(5, 8)
    a1, a2 = gg.gate(x), gg.gate(x)
    assert not torch.equal(a1, a2) and ((a1 > 0).sum(1) == 3).all()
    gg.eval()
    mid = MIDBlock(8, 6, top_k=3, alpha_dropout=0.).eval(); mid.load_state_dict(gg.state_dict())
    torch.testing.assert_close(gg(x), mid(x))                         # tau = 1, no noise: MID-L's gate
    gg.tau = 0.5; ah = gg.gate(x); alpha = torch.sigmoid(gg.alpha_proj(x) / 0.5)
    torch.testing.assert_close(ah, alpha * topk_mask(alpha, 3))

@pytest.mark.parametrize('name,expected', [('midl', 0.25), ('random_topk', 0.25), ('fixed_alpha', 0.25), ('gumbel', 0.25),
                                           ('f1_only', 1.0), ('f2_only', 1.0)])
def test_ablation_anr_uses_midl_definition(name, expected):
    torch.manual_seed(0)
    net = nn.Sequential(make_layer(name, 10, 8, top_k=2), make_layer(name, 8, 8, top_k=2))
    assert len(midl_layers(net)) == 2
    assert model_anr(net, torch.randn(20, 10)) == expected
    net.train()
    with tracking(net): net(torch.randn(400, 10))                      # training: dropout on alpha_hat closes ~10 %
    if expected < 1: assert 0.8 * expected < anr(net) < expected

def test_model_level_helpers():
    torch.manual_seed(0)
    net = nn.Sequential(make_layer('switch', 6, 8), make_layer('loramoe', 8, 8), make_layer('concrete_dropout', 8, 4))
    net(torch.randn(16, 6))
    total = net[0].aux_loss() + net[1].aux_loss() + net[2].aux_loss()
    torch.testing.assert_close(collect_aux_loss(net), total)
    assert len(hidden_blocks(net)) == 3 and model_anr(net) == 1.0
    assert collect_aux_loss(nn.Linear(2, 2)).item() == 0

@pytest.mark.parametrize('name', ['midl', 'fixed_alpha', 'gumbel'])
def test_nan_gate_never_takes_a_slot_in_gated_ablations(name):
    torch.manual_seed(0)
    b = make_layer(name, 12, 8, top_k=2, alpha_dropout=0.).eval()
    with torch.no_grad(): b.alpha_proj.bias[1] = float('nan')            # neuron 1's gate is NaN in every row
    x = torch.randn(40, 12)
    _, m = b.select(x)
    assert (m[:, 1] == 0).all() and (m.sum(-1) == 2).all()
    assert model_anr(b, x) == 0.25                                      # k/d, not (k-1)/d

@pytest.mark.parametrize('name', ['midl', 'f2_only', 'fixed_alpha'])
def test_f2_hidden_sets_f2_width(name):
    b = make_layer(name, 8, 6, variant='section_4_4', f2_hidden=10)
    assert b.f2[0].out_features == 10 and b.f2[2].in_features == 10
    with pytest.raises(TypeError, match='f2_hidden'): make_layer(name, 8, 6, hidden=10)   # the old name is rejected

@pytest.mark.parametrize('name', GATING)
def test_zero_width_fails_at_construction(name):
    with pytest.raises(ValueError, match='>= 1'): make_layer(name, 8, 0)
    with pytest.raises(ValueError, match='>= 1'): make_layer(name, 0, 8)

@pytest.mark.parametrize('cls,path,other', [(F1Only, 'f1', 'f2'), (F2Only, 'f2', 'f1')])
def test_one_path_ablations_are_midl_with_parts_passed_in(cls, path, other):
    from midl.layers import ConstantGate, ZeroPath
    torch.manual_seed(0); b = cls(8, 6, variant='section_4_4')
    torch.manual_seed(0); mid = MIDBlock(8, 6, variant='section_4_4')
    assert isinstance(b.alpha_proj, ConstantGate) and isinstance(getattr(b, other), ZeroPath)
    x = torch.randn(5, 8)
    assert torch.equal(getattr(b, other)(x), torch.zeros(5, 6))         # the missing path is zero, not an error
    assert torch.equal(b.gate(x), torch.full((5, 6), 1. if path == 'f1' else 0.))   # alpha_hat = 1 or 0
    sd = mid.state_dict()                                                # same seed: the same path as MID-L's
    assert all(torch.equal(v, sd[k]) for k, v in b.state_dict().items())

@pytest.mark.parametrize('name,keys', [
    ('midl', ['step', 'f1.weight', 'f1.bias', 'f2.weight', 'f2.bias', 'alpha_proj.weight', 'alpha_proj.bias']),
    ('fixed_alpha', ['step', 'f1.weight', 'f1.bias', 'f2.weight', 'f2.bias', 'alpha_proj.weight', 'alpha_proj.bias']),
    ('random_topk', ['step', 'f1.weight', 'f1.bias', 'f2.weight', 'f2.bias']),      # as model version 1 built it
    ('f1_only', ['step', 'f1.weight', 'f1.bias']), ('f2_only', ['step', 'f2.weight', 'f2.bias']),
    ('concrete_dropout', ['p_logit', 'linear.weight', 'linear.bias'])])
def test_state_dict_keys_unchanged(name, keys):
    from midl.models import version_config
    assert list(make_layer(name, 4, 3, **version_config(1, name)).state_dict()) == keys   # models saved before still load

def test_random_topk_sample_masks_are_saved():
    assert list(make_layer('random_topk', 4, 3).state_dict())[1:3] == ['mask_a', 'mask_b']

def test_methods_in_class_bodies_and_no_leaked_names():
    import midl.layers
    for cls, names in ((ConcreteDropout, ('forward', 'concrete_drop', 'regulariser', 'aux_loss')),
                       (SwitchFFN, ('forward', 'route', 'capacity', 'aux_loss'))):
        for n in names: assert getattr(cls, n).__qualname__ == f'{cls.__name__}.{n}', n
    assert not {'route', 'concrete_drop', 'regulariser'} & set(midl.layers.__all__)
    assert all(not n.startswith('_') for n in midl.layers.__all__)

def test_model_anr_restores_each_submodule_mode():
    net = nn.Sequential(make_layer('midl', 6, 6, top_k=3), nn.BatchNorm1d(6)).train()
    net[1].eval()
    assert model_anr(net, torch.randn(8, 6)) == 0.5
    assert net.training and net[0].training and not net[1].training   # the frozen BatchNorm stays frozen

def test_random_topk_mask_fixed_per_sample_across_epochs():
    "mask='sample': a training sample keeps its masks in every layer while the weights train (the paper's §5.3)."
    from midl.models import build_model
    from midl.layers import hidden_blocks
    torch.manual_seed(0)
    m = build_model(input_shape=(12,), n_classes=3, layer='random_topk', hidden=(8, 8), top_k=3)
    x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
    seen = []
    hooks = [b.register_forward_pre_hook(lambda b, i: seen.append(b.select(i[0])[1])) for b in hidden_blocks(m)]
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    masks = []
    for order in (torch.arange(32), torch.randperm(32)):
        seen.clear(); out = m(x[order]); masks.append([s[torch.argsort(order)] for s in seen])
        torch.nn.functional.cross_entropy(out, y[order]).backward(); opt.step(); opt.zero_grad()
    for a, b in zip(*masks): assert torch.equal(a, b)
    step = build_model(input_shape=(12,), n_classes=3, layer='random_topk', hidden=(8, 8), top_k=3, mask='step')
    b0 = hidden_blocks(step)[0]
    assert not torch.equal(b0.select(x)[1], b0.select(x)[1])        # model version 1: a new mask every call
