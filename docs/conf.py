# Sphinx configuration of the offline docs site: `bash .ci/run docs` builds `_proc/` (nbdev's processed notebooks)
# into `_docs/` with `sphinx-build -c docs _proc _docs`. Nothing is executed: pages show the outputs the notebooks
# carry (experiment notebooks hold those of the runs in results/full). `_quarto.yml` configures the Quarto site that
# `nbdev_docs` builds for those who have Quarto; this one needs only the `dev` extra.
import sys
from configparser import ConfigParser
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))                              # for nbreader
cfg = ConfigParser(delimiters=['=']); cfg.read(here.parent/'settings.ini', encoding='utf-8'); cfg = cfg['DEFAULT']

project, author, copyright = cfg['title'], cfg['author'], cfg['copyright']
release = version = cfg['version']
extensions = ['myst_nb', 'sphinx-mathjax-offline']        # MathJax 3 from _static/mathjax: math renders offline
root_doc = 'index'
exclude_patterns = ['_*', '.*', '*.yml', '*.css']      # the Quarto files nbdev copies into _proc
nb_execution_mode = 'off'                                  # render stored outputs only
nb_custom_formats = {'.ipynb': ['nbreader.read', {}, False]}
nb_render_markdown_format = 'myst'                         # show_doc outputs are Markdown
nb_merge_streams = True
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence']
myst_heading_anchors = 3                                   # '### MIDLayer' gets the anchor 'midlayer', as in Quarto
suppress_warnings = ['mystnb.unknown_mime_type', 'myst.header']
html_theme = 'furo'
html_title = f"{cfg['title']} {version}"
html_theme_options = {'source_repository': cfg['git_url'], 'source_branch': cfg['branch'], 'source_directory': 'nbs/'}
html_show_sourcelink = False
html_copy_source = False
html_static_path = ['_static']
html_css_files = ['midl.css']
