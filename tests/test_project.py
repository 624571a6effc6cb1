"Project configuration: nbdev's test flags."
import nbformat
from nbdev.config import get_config
from nbdev import test as nbdev_test

def test_slow_and_gpu_cells_are_skipped_by_nbdev_test(tmp_path):
    flags = get_config().tst_flags.split()
    assert set(flags) == {'slow', 'gpu'}                      # 'slow|gpu' would be one flag that no cell carries
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in
                ("#| slow\nraise RuntimeError('a slow cell ran')", "#| gpu\nraise RuntimeError('a gpu cell ran')", 'x = 1')]
    nbformat.write(nb, str(tmp_path/'t.ipynb'))
    ok, _ = nbdev_test.test_nb(tmp_path/'t.ipynb', skip_flags=flags)
    assert ok
    ok, _ = nbdev_test.test_nb(tmp_path/'t.ipynb', skip_flags=['slow|gpu'])        # what nbdev did with the old setting
    assert not ok
