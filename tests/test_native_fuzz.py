"The native kernels under AddressSanitizer and UndefinedBehaviorSanitizer: a seeded differential fuzz against the reference (`tests/native_fuzz.py`)."
import os, shutil, subprocess, sys, textwrap
from pathlib import Path
import pytest

FUZZ = Path(__file__).with_name('native_fuzz.py')
REPORTS = ('AddressSanitizer', 'runtime error:', 'LeakSanitizer', 'MISMATCH')

def _runtime(name, cc='gcc'):
    "The path of a sanitizer runtime (or libstdc++) the compiler ships, or None."
    p = subprocess.run([cc, f'-print-file-name={name}'], capture_output=True, text=True).stdout.strip()
    return p if os.path.isabs(p) and os.path.exists(p) else None

@pytest.fixture(scope='module')
def sanitized_env(tmp_path_factory):
    "Environment for a child Python whose native kernels are built with -fsanitize=address,undefined into a fresh cache."
    if shutil.which('gcc') is None or shutil.which('g++') is None: pytest.skip('needs gcc and g++')
    asan, cxx = _runtime('libasan.so'), _runtime('libstdc++.so.6', 'g++')
    if asan is None or cxx is None: pytest.skip("this gcc ships no libasan.so (install the compiler's sanitizer runtime)")
    # the ASan runtime must come first in the process; libstdc++ with it, so that ASan finds __cxa_throw to intercept
    return {**os.environ, 'MIDL_SANITIZE': '1', 'MIDL_KERNEL_CACHE': str(tmp_path_factory.mktemp('sanitized-kernels')),
            'LD_PRELOAD': f'{asan} {cxx}', 'ASAN_OPTIONS': 'detect_leaks=0:abort_on_error=1',
            'UBSAN_OPTIONS': 'print_stacktrace=1:halt_on_error=1'}

def _run(args, env, timeout):
    r = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr

@pytest.mark.slow
def test_sanitizers_catch_an_out_of_bounds_write(sanitized_env):
    "The canary: a kernel called around the checks with a too-small output must be reported, or the fuzz below proves nothing."
    rc, out = _run(['-c', textwrap.dedent('''
        import torch, midl.native as K
        assert K.sanitizing() and K.native_kernel() is not None
        a, idx = torch.rand(4, 64), torch.empty(1, 16, dtype=torch.int64)     # room for 1 row of 16, written 4 rows
        K.native_kernel().topk(a.data_ptr(), idx.data_ptr(), 4, 64, 16)
        print('not caught')
        ''')], sanitized_env, timeout=600)
    assert rc != 0 and 'AddressSanitizer: heap-buffer-overflow' in out and 'not caught' not in out, out[-3000:]

@pytest.mark.slow
@pytest.mark.parametrize('seed', [0, 1])
def test_native_fuzz_under_sanitizers_is_clean(sanitized_env, seed):
    "1,000 random configurations per seed (shapes, k, threads, dtypes, non-contiguous and empty inputs): no mismatch, no report."
    rc, out = _run([str(FUZZ), '--n', '1000', '--seed', str(seed)], sanitized_env, timeout=1500)
    assert rc == 0 and not any(r in out for r in REPORTS), out[-3000:]
    assert '1000 configurations' in out and '0 mismatches, sanitizers on' in out, out[-3000:]
