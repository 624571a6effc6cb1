"The midl_data command: import from a local folder (md5 checks, manifests, repairs), list, download."
import json, tarfile
from pathlib import Path
import pytest
from midl import cache as K, data as D
from test_data import write_adult, write_cifar10, write_idx_set, write_imdb

def fake_shared(root):
    src = Path(root)/'shared'
    for name in ('MNIST', 'FashionMNIST'): write_idx_set(src, name, gz=True)
    write_adult(src)
    write_imdb(src/'imdb_src')
    with tarfile.open(src/'aclImdb.tar.gz', 'w:gz') as tf: tf.add(src/'imdb_src'/'aclImdb', arcname='aclImdb')
    c = src/'c10'; write_cifar10(c)
    with tarfile.open(src/'cifar-10-batches-py.subset.tar.xz', 'w:xz') as tf: tf.add(c/'cifar-10-batches-py', arcname='cifar-10-batches-py')
    return src

def test_midl_data_import_reports_md5_mismatch_and_is_atomic(tmp_path, capsys):
    src, cache = fake_shared(tmp_path), tmp_path/'cache'
    rc = K.midl_data(['--root', str(cache), 'import', str(src)])
    out = capsys.readouterr().out
    assert rc == 1 and 'MISMATCH' in out and 'MNIST/raw/train-images-idx3-ubyte' in out and 'NOT installed' in out
    assert 'aclImdb: installed' in out                                  # no known md5s: copied
    assert sorted(p.name for p in cache.iterdir()) == ['aclImdb']       # nothing half-done, no staging folders
    assert len(D.get_dataset('imdb', root=cache, vocab_size=8)) == 4

def test_midl_data_import_allow_mismatch_then_idempotent(tmp_path, capsys):
    src, cache = fake_shared(tmp_path), tmp_path/'cache'
    assert K.midl_data(['--root', str(cache), 'import', str(src), '--allow-mismatch']) == 0
    assert (cache/'MNIST'/'raw'/'train-images-idx3-ubyte').exists()            # gunzipped where torchvision expects it
    assert len(D.get_dataset('fashion_mnist', root=cache)) == 12 and len(D.get_dataset('cifar10', root=cache)) == 20
    assert D.get_dataset('adult', root=cache).integrity == 'approximate'
    capsys.readouterr()
    assert K.midl_data(['--root', str(cache), 'import', str(src)]) == 0
    out = capsys.readouterr().out
    assert out.count('; skipped') == 5 and 'installed' not in out.split('done in')[0]
    (cache/'adult'/'adult.data').write_text('changed')                  # a damaged cache item is re-imported
    res = K.import_folder(src, cache, allow_mismatch=True, log=lambda s: None)
    assert res['adult'] == 'installed' and res['MNIST/raw'] == 'skipped'
    assert K.midl_data(['--root', str(cache), 'list']) == 0
    listing = capsys.readouterr().out
    assert 'mnist' in listing and 'md5 mismatch' in listing

def cut_in_half(p):
    b = p.read_bytes(); p.write_bytes(b[:len(b) // 2])

def test_midl_data_import_truncated_archives(tmp_path, capsys):
    src, cache = fake_shared(tmp_path), tmp_path/'cache'
    bad = {'MNIST/raw': src/'MNIST'/'raw'/'train-images-idx3-ubyte.gz', 'aclImdb': src/'aclImdb.tar.gz',
           'cifar-10-batches-py': src/'cifar-10-batches-py.subset.tar.xz'}
    for p in bad.values(): cut_in_half(p)
    rc = K.midl_data(['--root', str(cache), 'import', str(src), '--allow-mismatch'])
    out = capsys.readouterr()
    assert rc == 1 and 'Traceback' not in out.out + out.err
    for rel, p in bad.items():
        line, = [l for l in out.out.splitlines() if l.startswith(f'{rel}: FAILED')]
        assert f'{p} is truncated or damaged' in line and 'CorruptDataError' in line
    assert out.out.rstrip().splitlines()[-1] == 'FAILED: MNIST/raw, aclImdb, cifar-10-batches-py'
    assert sorted(p.name for p in cache.iterdir()) == ['FashionMNIST', 'adult']                    # the others went in
    assert len(D.get_dataset('fashion_mnist', root=cache)) == 12 and len(D.get_dataset('adult', root=cache)) == 5

def test_midl_data_reimport_repairs_damaged_cache(tmp_path):
    src, cache = fake_shared(tmp_path), tmp_path/'cache'
    assert set(K.import_folder(src, cache, allow_mismatch=True, log=lambda s: None).values()) == {'installed'}
    assert len(D.get_dataset('imdb', root=cache, vocab_size=8)) == 4            # the loader's own cache (.midl/) is no damage
    log = []
    assert set(K.import_folder(src, cache, log=log.append).values()) == {'skipped'}
    for p in ('neg/0_1.txt', 'pos/3_10.txt'): (cache/'aclImdb'/'train'/p).unlink()          # 2 reviews deleted
    assert len(D.get_dataset('imdb', root=cache, vocab_size=8)) == 2                   # what a silently short cache gives
    f = cache/'adult'/'adult.test'; f.write_text(f.read_text().replace('Holand', 'Poland'))   # same size, other md5
    (cache/'cifar-10-batches-py'/'extra_batch').write_bytes(b'x')
    m = cache/'MNIST'/'raw'/'.midl-import.json'
    rec = json.loads(m.read_text()); del rec['manifest']; m.write_text(json.dumps(rec))       # an older record
    log = []
    res = K.import_folder(src, cache, allow_mismatch=True, log=log.append)
    assert res == {'MNIST/raw': 'installed', 'FashionMNIST/raw': 'skipped', 'adult': 'installed', 'aclImdb': 'installed',
                   'cifar-10-batches-py': 'installed'}
    text = '\n'.join(log)
    assert 'aclImdb: cache differs from its import manifest (2 files missing, e.g. train/' in text and '); re-importing' in text
    assert 'adult: cache differs from its import manifest (1 file changed, e.g. adult.test); re-importing' in text
    assert 'cifar-10-batches-py: cache differs from its import manifest (1 file extra, e.g. extra_batch)' in text
    assert 'MNIST/raw: cache has an import record without a manifest' in text
    assert len(D.get_dataset('imdb', root=cache, vocab_size=8)) == 4 and not (cache/'cifar-10-batches-py'/'extra_batch').exists()
    assert 'Holand' in f.read_text()
    assert set(K.import_folder(src, cache, log=lambda s: None).values()) == {'skipped'}

def test_midl_data_removes_leftover_staging_folders(tmp_path):
    src, cache = fake_shared(tmp_path), tmp_path/'cache'
    left = [cache/'.aclImdb.import-k1ll3d', cache/'MNIST'/'.raw.import-abc123']
    for p in left: p.mkdir(parents=True); (p/'half.txt').write_text('half an item')
    log = []
    K.import_folder(src, cache, allow_mismatch=True, log=log.append)
    assert not any(p.exists() for p in left)
    for p in left: assert any(str(p) in l and 'interrupted import' in l for l in log)
    assert list(cache.rglob('.*.import-*')) == []

def test_midl_data_known_good_md5(tmp_path):
    src, cache = tmp_path/'src', tmp_path/'cache'
    (src/'adult').mkdir(parents=True)
    real = Path('/work/shared/data/adult')
    if not real.exists(): pytest.skip('no real Adult files to check a known-good md5 with')
    for f in ('adult.data', 'adult.test'): (src/'adult'/f).write_bytes((real/f).read_bytes())
    assert K.import_folder(src, cache, log=lambda s: None) == {'adult': 'installed'}
    assert D.get_dataset('adult', root=cache).integrity == 'verified'

def test_midl_data_bad_folder(tmp_path, capsys):
    assert K.midl_data(['--root', str(tmp_path), 'import', str(tmp_path/'none')]) == 2
    (tmp_path/'empty').mkdir()
    assert K.midl_data(['--root', str(tmp_path/'c'), 'import', str(tmp_path/'empty')]) == 1
    with pytest.raises(SystemExit): K.midl_data(['frobnicate'])

def test_find_items_and_listing_follow_the_registry(tmp_path):
    src = tmp_path/'src'
    for rec in K._cache_items():
        if rec.folder: (src/rec.folder).mkdir(parents=True, exist_ok=True)
    (src/'SVHN'/'test_32x32.mat').touch()
    items = K.find_items(src)
    assert [i[0] for i in items] == sorted(r.folder for r in K._cache_items() if r.folder)
    assert {k: v for k, v, _ in items}['MNIST/raw'] == 'idx' and {k: v for k, v, _ in items}['SVHN'] == 'svhn'
    listing = K.cache_listing(tmp_path/'empty')
    assert listing.dataset.tolist() == [*D.DATASETS[:-1], 'cifar10c', 'cifar10c_frost', 'digits'] and listing.available.tolist() == [False] * 10 + [True]

def test_known_md5s_come_from_the_records():
    k = K.known_md5s()
    for rec in D.REGISTRY.values():
        for f, m in rec.md5s.items(): assert k[f'{rec.folder}/{f}'] == {m: 'official'}
    assert 'SVHN/test_32x32.mat' in k and len(k['cifar-10-batches-py/data_batch_1']) == 2

def test_download_cifar10_brings_the_frost_photographs(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(D.REGISTRY['cifar10'], 'loader', lambda name, root, train=True, download=False, **kw: calls.append((name, train)))
    monkeypatch.setattr(K, 'download_frost', lambda root, log=print: calls.append(('frost', root)))
    assert K.download(['cifar10'], root=tmp_path, log=lambda s: None) == {'cifar10': 'ok', 'cifar10c_frost': 'ok'}
    assert calls == [('cifar10', True), ('cifar10', False), ('frost', tmp_path)]
    calls.clear()
    assert K.midl_data(['--root', str(tmp_path), 'download', 'cifar10c_frost', 'cifar10']) == 0
    assert calls == [('frost', str(tmp_path)), ('cifar10', True), ('cifar10', False)]      # fetched once
    with pytest.raises(SystemExit): K.midl_data(['download', '--help'])
    assert 'cifar10c_frost' in ' '.join(capsys.readouterr().out.split())
