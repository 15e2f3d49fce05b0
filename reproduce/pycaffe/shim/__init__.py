"""The folder ``python -m reproduce pycaffe --path`` prints: it holds the ``caffe`` package that
makes ``import caffe`` this port (an ``__init__`` here only so that the folder is packaged)."""
