"CIFAR-10-C: the 15 generated corruptions, the released files, and corrupt_dataset's choice between them."
from pathlib import Path
import numpy as np, pytest, torch
from midl import cache as K, corruptions as C, data as D

def smooth_images(n=3, c=3, size=32, seed=0):
    from scipy import ndimage
    r = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(r.random((n, c, size, size)), (0, 0, 3, 3))
    a = 0.8 * (a - a.min()) / (a.max() - a.min()) + 0.2 * r.random((n, c, size, size))
    a[:, :, size // 4: size // 2, size // 4: 3 * size // 4] = 0.9
    return torch.from_numpy(a.astype(np.float32))

@pytest.mark.parametrize('name', C.CORRUPTIONS)
def test_corruption_shape_dtype_range_seed_and_severity(name):
    imgs = smooth_images()
    out = {s: C.corrupt_images(imgs, name, s, seed=0) for s in (1, 5)}
    for o in out.values(): assert o.shape == imgs.shape and o.dtype == torch.uint8
    assert torch.equal(C.corrupt_images(imgs, name, 5, seed=0), out[5])
    assert torch.equal(C.corrupt_images(imgs[0], name, 5, seed=0), C.corrupt_images(imgs[:1], name, 5, seed=0)[0])
    l1 = {s: float((o.float() / 255 - imgs).abs().mean()) for s, o in out.items()}
    assert l1[5] > 0.005
    if name == 'frost':                    # published weights: the image fades, the frost layer grows
        corr = {s: np.corrcoef(imgs.numpy().ravel(), o.numpy().ravel())[0, 1] for s, o in out.items()}
        assert corr[5] < corr[1]
    elif name != 'elastic_transform':      # its affine jitter shrinks with severity (see the notebook)
        assert l1[1] < l1[5], l1
    gray = C.corrupt_images(smooth_images(2, c=1, size=28), name, 3)
    assert gray.shape == (2, 1, 28, 28)

def test_corruption_uint8_input_and_errors():
    u = (smooth_images() * 255).to(torch.uint8)
    assert C.corrupt_images(u, 'contrast', 5).float().std() < u.float().std()
    with pytest.raises(ValueError, match='unknown corruption'): C.corrupt_images(u, 'rain')
    with pytest.raises(ValueError, match='severity'): C.corrupt_images(u, 'fog', 0)

def test_corrupt_dataset_generated():
    te = D.get_dataset('digits', train=False)
    c = C.corrupt_dataset(te, 'impulse_noise', 5, seed=1)
    assert c.corruption_source == 'generated' and len(c) == len(te) and torch.equal(c.targets, te.targets)
    assert c[0][0].shape == te[0][0].shape and c[0][0].max() <= 1
    with pytest.raises(ValueError, match='images'):
        C.corrupt_dataset(D.ArrayDataset(torch.zeros(2, 3), [0, 1], ['a', 'b'], modality='tabular'), 'fog')

def write_cifar10c(root, n=10, corruptions=('fog',)):
    d = Path(root)/'CIFAR-10-C'; d.mkdir(parents=True, exist_ok=True)
    for c in corruptions:
        np.save(d/f'{c}.npy', (np.repeat(np.arange(1, 6), n)[:, None, None, None] * np.ones((1, 32, 32, 3))).astype(np.uint8))
    np.save(d/'labels.npy', np.tile(np.arange(n) % 10, 5).astype(np.uint8))
    return d

def test_cifar10c_released_files(tmp_path):
    d = write_cifar10c(tmp_path)
    for s in range(1, 6):
        ds = C.load_cifar10c('fog', s, root=tmp_path)
        assert len(ds) == 10 and int(ds.x.max()) == s and ds.x.shape == (10, 3, 32, 32) and ds.corruption_source == 'released'
    np.save(d/'snow.npy', np.zeros((50, 32, 32), np.uint8))
    with pytest.raises(D.CorruptDataError, match='expected'): C.load_cifar10c('snow', 1, root=tmp_path)
    (d/'frost.npy').write_bytes((d/'fog.npy').read_bytes()[:5000])
    with pytest.raises(D.CorruptDataError, match='truncated'): C.load_cifar10c('frost', 1, root=tmp_path)
    with pytest.raises(D.DataNotFoundError, match='midl_data import'): C.load_cifar10c('glass_blur', 1, root=tmp_path)

def test_corrupt_dataset_prefers_released_for_full_cifar10_test(tmp_path):
    write_cifar10c(tmp_path, n=10000)
    test = D.ArrayDataset(torch.zeros(10000, 3, 32, 32, dtype=torch.uint8), np.arange(10000) % 10, C.CIFAR10_CLASSES,
                          name='cifar10', train=False)
    assert C.corrupt_dataset(test, 'fog', 2, root=tmp_path).corruption_source == 'released'
    assert C.corrupt_dataset(test.subset(np.arange(5), subset_indices=np.arange(5)), 'fog', 2, root=tmp_path).corruption_source == 'generated'

def test_corruptions_are_top_level_functions_in_order():
    assert tuple(f.__name__ for f in C._CORRUPTION_FNS.values()) == C.CORRUPTIONS
    for name in C.CORRUPTIONS: assert getattr(C, name) is C._CORRUPTION_FNS[name] and getattr(C, name).__doc__
    x = np.full((2, 8, 8, 3), 0.5)
    assert np.allclose(C.contrast(x, 3, np.random.default_rng(0)), x)          # a flat image has no contrast to lose
    assert C.CIFAR10C_INFO.folder == 'CIFAR-10-C' and C.CIFAR10C_INFO.name not in D.REGISTRY

# ---- agreement with make_cifar_c.py on hand-checkable cases, the frost photographs, the cache of generated sets

class Draws:
    "Stands in for a numpy Generator: returns scripted draws in order."
    def __init__(self, *vals): self.vals = list(vals)
    def _next(self, size): v = np.asarray(self.vals.pop(0)); return v.reshape(size) if size is not None else v
    def integers(self, low, high=None, size=None): return self._next(size)
    def normal(self, size=None, loc=0., scale=1.): return self._next(size)
    def uniform(self, low=0., high=1., size=None): return self._next(size)

def write_frost(root, size=(200, 300)):
    "Synthetic frost photographs in the cache `root`: red = row, green = column, blue = 7 + file index."
    from PIL import Image
    d = Path(root)/C.FROST_INFO.folder; d.mkdir(parents=True, exist_ok=True)
    r, c = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing='ij')
    for i, f in enumerate(C.FROST_INFO.meta):
        Image.fromarray(np.stack([r % 256, c % 256, np.full_like(r, 7 + i)], -1).astype(np.uint8)).save(d/f, quality=100)
    return d

@pytest.fixture(autouse=True)
def frost_cache(tmp_path, monkeypatch):
    "Every test here gets its own data cache with synthetic frost photographs (never the real cache)."
    write_frost(tmp_path/'cache'); monkeypatch.setenv('MIDL_DATA', str(tmp_path/'cache'))
    return tmp_path/'cache'

def test_glass_blur_copies_like_the_reference():
    u = np.arange(16.).reshape(1, 4, 4, 1)
    pairs = [(-1, -1), (0, -1), (-1, 0), (-1, -1)]              # (dx, dy) at (3,3), (3,2), (2,3), (2,2)
    out = C.glass_blur(u / 255, 1, Draws(*[np.array(p)[:, None] for p in pairs]))[0, ..., 0] * 255   # σ 0.05: no blur
    copied = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 5, 10], [12, 13, 10, 10]])
    swapped = np.array([[0, 1, 2, 3], [4, 11, 6, 7], [8, 9, 5, 14], [12, 13, 15, 10]])
    assert np.allclose(out, copied) and not np.allclose(out, swapped)

def test_snow_layer_truncates_then_passes_imagemagick_8_bits():
    one = np.zeros((1, 24, 3, 1)); one[0, :, 0] = one[0, 2, 2] = 0.999
    sl = C._snow_layer(one.shape, (0.1, 0.2, 1, 0.6, 8, 3, 0.95), Draws(one, [-90.]))[0, ..., 0] * 255
    assert sl[:, 0].tolist() == [254] * 24                      # uint8 truncation: 254.7 → 254, and it stays 254
    w = np.exp(-np.arange(17) ** 2 / 18); w /= w.sum()
    assert sl[2:19, 2].tolist() == np.floor(np.round(254 * w * 257) / 257).tolist() == [59, 56, 47, 36, 24, 14, 8, 3, 1] + [0] * 8

def test_pixelate_is_pillow_box_on_uint8():
    px = np.tile(np.array([10., 50, 91, 130]), (1, 4, 1))[..., None] / 255
    assert (C.pixelate(px, 4, None) * 255)[0, 0, :, 0].round(9).tolist() == [10, 71, 71, 130]     # 70.5 → 71
    from PIL import Image
    u = (smooth_images(2) * 255).to(torch.uint8)
    out = C.corrupt_images(u, 'pixelate', 2)
    for im, o in zip(u, out):
        ref = Image.fromarray(im.permute(1, 2, 0).numpy()).resize((28, 28), Image.BOX).resize((32, 32), Image.BOX)
        assert np.array_equal(np.asarray(ref), o.permute(1, 2, 0).numpy())

def test_defocus_disk_is_float32():
    for p in [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]:
        k = C._disk(*p); assert k.dtype == np.float32 and abs(k.sum(dtype=np.float32) - 1) < 1e-6
    g = np.exp(-np.array([1., 0, 1]) / (2 * 0.4 ** 2)); g = (g / g.sum()).astype(np.float32)
    imp = np.zeros((1, 9, 9, 1)); imp[0, 4, 4] = 1
    assert C.defocus_blur(imp, 1, None)[0, 3:6, 3:6, 0].tolist() == np.outer(g, g).astype(np.float64).tolist()

def test_against_opencv_when_installed():
    cv2 = pytest.importorskip('cv2')
    for p in [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]:
        L = np.arange(-8, 9); X, Y = np.meshgrid(L, L)
        d = ((X ** 2 + Y ** 2) <= p[0] ** 2).astype(np.float32); d /= d.sum()
        assert np.allclose(C._disk(*p), cv2.GaussianBlur(d, (3, 3), sigmaX=p[1]), rtol=0, atol=1e-9)
    a = np.random.default_rng(0).integers(0, 256, (323, 487, 3)).astype(np.uint8)
    assert np.array_equal(C._shrink5(a), cv2.resize(a, (0, 0), fx=0.2, fy=0.2))

def test_frost_crop_blend_and_channels(frost_cache):
    x = np.full((1, 2, 2, 3), 100 / 255)
    f = np.floor(np.clip(C.frost(x, 1, Draws([0], 3, 4)), 0, 1) * 255)[0]     # frost1, crop at row 3, column 4
    assert f[..., 0].tolist() == [[103, 103], [104, 104]]       # 100 + 0.2 · (5·(3 + i) + 2)
    assert f[..., 1].tolist() == [[104, 105], [104, 105]]       # 100 + 0.2 · (5·(4 + j) + 2)
    assert f[..., 2].tolist() == [[101, 101], [101, 101]]       # blue is blue: RGB, not BGR
    shrunk = C._frost_photos(str(frost_cache/C.FROST_INFO.folder))
    assert [p.shape for p in shrunk] == [(40, 60, 3)] * 5 and shrunk[2][0, 0].tolist() == [2, 2, 9]

def test_frost_without_photographs_names_the_fix(tmp_path):
    with pytest.raises(C.FrostPhotosNotFoundError, match='midl_data import') as e:
        C.corrupt_images(smooth_images(1), 'frost', 3, root=tmp_path/'empty')
    msg = str(e.value)
    assert C.FROST_URL in msg and isinstance(e.value, D.DataNotFoundError)
    assert 0 < msg.index('online: midl_data download cifar10c_frost') < msg.index('offline: midl_data import FOLDER')

SHARED_FROST = Path('/work/shared/data')/C.FROST_INFO.folder

@pytest.fixture
def fake_download(tmp_path, monkeypatch):
    "torchvision's `download_url` replaced by a copy of the real photographs (synthetic ones, with their md5s, without them)."
    import torchvision.datasets.utils as tvu
    src = SHARED_FROST if SHARED_FROST.is_dir() else write_frost(tmp_path/'src')
    if src != SHARED_FROST:
        from midl.formats import md5sum
        monkeypatch.setattr(C.FROST_INFO, 'md5s', {f: md5sum(src/f) for f in C.FROST_INFO.meta})
    calls, bad = [], {}
    def fake_or_bad(url, root, filename=None, md5=None, **kw):                 # `bad`: file → bytes to write, or an error
        calls.append(url)
        what = bad.get(filename)
        if isinstance(what, Exception): raise what
        (Path(root)/filename).write_bytes(what if what is not None else (src/filename).read_bytes())
    monkeypatch.setattr(tvu, 'download_url', fake_or_bad)
    return calls, bad

def test_download_frost_fills_the_cache(tmp_path, fake_download):
    calls, _ = fake_download; root = tmp_path/'c'
    assert K.download(['cifar10c_frost'], root=root, log=lambda s: None) == {'cifar10c_frost': 'ok'}
    assert calls == [C.FROST_DOWNLOAD_URL + f for f in C.FROST_INFO.meta]
    assert C.FROST_INFO.available(root) and not list(root.glob('.*'))            # no staging folder left
    assert C.corrupt_images(smooth_images(1), 'frost', 3, root=root).shape == (1, 3, 32, 32)
    C.check_corruption_inputs('all', root)
    calls.clear()
    assert K.midl_data(['--root', str(root), 'download', 'cifar10c_frost']) == 0 and calls == []    # all there: nothing fetched
    (root/C.FROST_INFO.folder/'frost2.png').write_bytes(b'damaged')
    assert C.download_frost(root, log=lambda s: None) == ['frost2.png']           # a file with another md5 is fetched again

def test_download_frost_wrong_md5_installs_nothing(tmp_path, fake_download, capsys):
    calls, bad = fake_download; root = tmp_path/'c'
    bad['frost3.png'] = b'<html>404: Not Found</html>'
    with pytest.raises(D.CorruptDataError, match=r'frost3\.png has md5 \w+, not the official'):
        C.download_frost(root, log=lambda s: None)
    assert list(root.rglob('*')) == []                                          # not even frost1.png, frost2.png
    assert K.midl_data(['--root', str(root), 'download', 'cifar10c_frost']) == 1
    out = capsys.readouterr().out
    assert 'cifar10c_frost: FAILED' in out and 'frost3.png has md5' in out and list(root.rglob('*')) == []
    bad['frost3.png'] = OSError('no network')                                   # offline: the error says what to do instead
    with pytest.raises(C.FrostPhotosNotFoundError, match='midl_data import FOLDER') as e: C.download_frost(root, log=lambda s: None)
    assert str(e.value).splitlines()[-1] == 'the download failed: OSError: no network' and list(root.rglob('*')) == []

def test_check_corruption_inputs_fails_before_training(tmp_path):
    empty = tmp_path/'empty'
    for c in ('all', 'frost'):
        with pytest.raises(C.FrostPhotosNotFoundError, match='midl_data download cifar10c_frost'): C.check_corruption_inputs(c, empty)
    for c in ('gaussian_noise', 'fog', None, ''): C.check_corruption_inputs(c, empty)
    with pytest.raises(ValueError, match='unknown corruption'): C.check_corruption_inputs('rain', empty)
    with pytest.raises(ValueError, match='severity'): C.check_corruption_inputs('fog', empty, severity=6)
    write_frost(tmp_path/'full'); C.check_corruption_inputs('all', tmp_path/'full')
    C.check_corruption_inputs('frost')                                           # the autouse cache of MIDL_DATA has them

def test_midl_data_imports_the_frost_photographs(tmp_path):
    src = Path('/work/shared/data')
    if not (src/C.FROST_INFO.folder).is_dir():                # the real files, md5-checked; else synthetic ones (no md5)
        src = tmp_path/'src'; write_frost(src)
    root = tmp_path/'c'
    assert [i[0] for i in K.find_items(src) if i[0] == C.FROST_INFO.folder] == [C.FROST_INFO.folder]
    from midl import cache
    item = [i for i in K.find_items(src) if i[0] == C.FROST_INFO.folder][0]
    status = cache.import_item(*item, root, log=lambda s: None)
    assert status == ('installed' if src == Path('/work/shared/data') else 'failed')      # synthetic files: md5 mismatch
    if status == 'installed':
        assert C.FROST_INFO.available(root)
        assert K.known_md5s()['cifar10c-frost/frost1.png'] == {'6ead634ace1f366d77e87078b465863c': 'official'}
        assert C.corrupt_images(smooth_images(1), 'frost', 3, root=root).shape == (1, 3, 32, 32)

def test_corrupt_dataset_caches_generated_sets(frost_cache, monkeypatch):
    te = D.get_dataset('digits', train=False).subset(np.arange(40))
    first = C.corrupt_dataset(te, 'glass_blur', 2, seed=3)
    files = list((frost_cache/'cifar10c-generated').glob('glass_blur-s2-seed3-*.npy'))
    assert len(files) == 1
    def boom(*a, **k): raise AssertionError('generated again instead of read from the cache')
    monkeypatch.setattr(C, 'corrupt_images', boom)
    assert torch.equal(C.corrupt_dataset(te, 'glass_blur', 2, seed=3).x, first.x)
    with pytest.raises(AssertionError, match='generated again'): C.corrupt_dataset(te, 'glass_blur', 2, seed=4)   # other key
    monkeypatch.undo(); monkeypatch.setenv('MIDL_DATA', str(frost_cache))
    files[0].write_bytes(files[0].read_bytes()[:500])                        # truncated: regenerated, with a warning
    with pytest.warns(UserWarning, match='unreadable'): again = C.corrupt_dataset(te, 'glass_blur', 2, seed=3)
    assert torch.equal(again.x, first.x) and np.load(files[0]).shape == tuple(te.x.shape)
    other = te.subset(np.arange(40)); other.x = other.x.clone(); other.x[0, 0, 0, 0] += 0.5
    assert C._generated_path(other.x, 'glass_blur', 2, 3, None) != files[0]          # the images' bytes are in the key
    assert C._generated_path(te.x, 'glass_blur', 2, 3, None) == files[0]
    monkeypatch.setattr(C, 'CORRUPTIONS_VERSION', C.CORRUPTIONS_VERSION + 1)
    assert C._generated_path(te.x, 'glass_blur', 2, 3, None) != files[0]

def test_robust_accuracy_uses_one_fixed_corrupted_test_set(tmp_path, monkeypatch):
    from midl.experiment import RunSpec, robust_accuracy
    te = D.get_dataset('digits', train=False).subset(np.arange(20))
    calls = []
    def spy(ds, c, severity, seed=0, root=None, **k): calls.append((c, severity, seed, root)); return ds
    monkeypatch.setattr(C, 'corrupt_dataset', spy)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    for seed in (1, 2): robust_accuracy(model, te, RunSpec(seed=seed, corruption='fog'), 'cpu', root=tmp_path)
    assert calls == [('fog', 3, 0, tmp_path)] * 2
