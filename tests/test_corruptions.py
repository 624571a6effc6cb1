"CIFAR-10-C: the 15 generated corruptions, the released files, and corrupt_dataset's choice between them."
from pathlib import Path
import numpy as np, pytest, torch
from midl import corruptions as C, data as D

def smooth_images(n=3, c=3, size=32, seed=0):
    from scipy import ndimage
    r = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(r.random((n, c, size, size)), (0, 0, 3, 3))
    a = 0.8 * (a - a.min()) / (a.max() - a.min()) + 0.2 * r.random((n, c, size, size))
    a[:, :, size // 4: size // 2, size // 4: 3 * size // 4] = 0.9
    return torch.from_numpy(a.astype(np.float32))

@pytest.mark.parametrize('name', D.CORRUPTIONS)
def test_corruption_shape_dtype_range_seed_and_severity(name):
    imgs = smooth_images()
    out = {s: D.corrupt_images(imgs, name, s, seed=0) for s in (1, 5)}
    for o in out.values(): assert o.shape == imgs.shape and o.dtype == torch.uint8
    assert torch.equal(D.corrupt_images(imgs, name, 5, seed=0), out[5])
    assert torch.equal(D.corrupt_images(imgs[0], name, 5, seed=0), D.corrupt_images(imgs[:1], name, 5, seed=0)[0])
    l1 = {s: float((o.float() / 255 - imgs).abs().mean()) for s, o in out.items()}
    assert l1[5] > 0.005
    if name == 'frost':                    # published weights: the image fades, the frost layer grows
        corr = {s: np.corrcoef(imgs.numpy().ravel(), o.numpy().ravel())[0, 1] for s, o in out.items()}
        assert corr[5] < corr[1]
    elif name != 'elastic_transform':      # its affine jitter shrinks with severity (see the notebook)
        assert l1[1] < l1[5], l1
    gray = D.corrupt_images(smooth_images(2, c=1, size=28), name, 3)
    assert gray.shape == (2, 1, 28, 28)

def test_corruption_uint8_input_and_errors():
    u = (smooth_images() * 255).to(torch.uint8)
    assert D.corrupt_images(u, 'contrast', 5).float().std() < u.float().std()
    with pytest.raises(ValueError, match='unknown corruption'): D.corrupt_images(u, 'rain')
    with pytest.raises(ValueError, match='severity'): D.corrupt_images(u, 'fog', 0)

def test_corrupt_dataset_generated():
    te = D.get_dataset('digits', train=False)
    c = D.corrupt_dataset(te, 'impulse_noise', 5, seed=1)
    assert c.corruption_source == 'generated' and len(c) == len(te) and torch.equal(c.targets, te.targets)
    assert c[0][0].shape == te[0][0].shape and c[0][0].max() <= 1
    with pytest.raises(ValueError, match='images'):
        D.corrupt_dataset(D.ArrayDataset(torch.zeros(2, 3), [0, 1], ['a', 'b'], modality='tabular'), 'fog')

def write_cifar10c(root, n=10, corruptions=('fog',)):
    d = Path(root)/'CIFAR-10-C'; d.mkdir(parents=True, exist_ok=True)
    for c in corruptions:
        np.save(d/f'{c}.npy', (np.repeat(np.arange(1, 6), n)[:, None, None, None] * np.ones((1, 32, 32, 3))).astype(np.uint8))
    np.save(d/'labels.npy', np.tile(np.arange(n) % 10, 5).astype(np.uint8))
    return d

def test_cifar10c_released_files(tmp_path):
    d = write_cifar10c(tmp_path)
    for s in range(1, 6):
        ds = D.load_cifar10c('fog', s, root=tmp_path)
        assert len(ds) == 10 and int(ds.x.max()) == s and ds.x.shape == (10, 3, 32, 32) and ds.corruption_source == 'released'
    np.save(d/'snow.npy', np.zeros((50, 32, 32), np.uint8))
    with pytest.raises(D.CorruptDataError, match='expected'): D.load_cifar10c('snow', 1, root=tmp_path)
    (d/'frost.npy').write_bytes((d/'fog.npy').read_bytes()[:5000])
    with pytest.raises(D.CorruptDataError, match='truncated'): D.load_cifar10c('frost', 1, root=tmp_path)
    with pytest.raises(D.DataNotFoundError, match='midl_data import'): D.load_cifar10c('glass_blur', 1, root=tmp_path)

def test_corrupt_dataset_prefers_released_for_full_cifar10_test(tmp_path):
    write_cifar10c(tmp_path, n=10000)
    test = D.ArrayDataset(torch.zeros(10000, 3, 32, 32, dtype=torch.uint8), np.arange(10000) % 10, D.CIFAR10_CLASSES,
                          name='cifar10', train=False)
    assert D.corrupt_dataset(test, 'fog', 2, root=tmp_path).corruption_source == 'released'
    assert D.corrupt_dataset(test.subset(np.arange(5), subset_indices=np.arange(5)), 'fog', 2, root=tmp_path).corruption_source == 'generated'

def test_corruptions_are_top_level_functions_in_order():
    assert tuple(f.__name__ for f in C._CORRUPTION_FNS.values()) == C.CORRUPTIONS
    for name in C.CORRUPTIONS: assert getattr(C, name) is C._CORRUPTION_FNS[name] and getattr(C, name).__doc__
    x = np.full((2, 8, 8, 3), 0.5)
    assert np.allclose(C.contrast(x, 3, np.random.default_rng(0)), x)          # a flat image has no contrast to lose
    assert C.CIFAR10C_INFO.folder == 'CIFAR-10-C' and C.CIFAR10C_INFO.name not in D.REGISTRY
