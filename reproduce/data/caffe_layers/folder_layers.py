"""The Python data layer of the prototxts ``stage --dataset DIR`` writes, for Caffe itself.

``python_param { module: "folder_layers" layer: "FolderSegDataLayer" param_str: "{…}" }``:
put this folder on Caffe's ``PYTHONPATH`` (with this project importable) and ``caffe train
--solver <runs>/<stage>/solver.prototxt`` reads the user's dataset as the suite's stages do —
the reading, the preprocessing and the sample order are ``reproduce.data.folder`` and
``reproduce.data.registry``'s, shaped like the reference ``voc_layers.VOCSegDataLayer``: two
tops (``data``, ``label``), no bottom, the next sample loaded in ``reshape`` and copied out in
``forward``, no backward. The suite's own ``Net`` never imports this file (it builds the same
data source from the ``param_str`` by name); ``import caffe`` here is Caffe's pycaffe, or this
project's (``python -m reproduce pycaffe --path``).
"""
import caffe

from reproduce.data.registry import make_data_source


class FolderSegDataLayer(caffe.Layer):
    """A user's dataset (``reproduce.data.folder.FolderSegmentation``), one image a batch."""

    def setup(self, bottom, top):
        if len(top) != 2:
            raise Exception("Need to define two tops: data and label.")
        if len(bottom) != 0:
            raise Exception("Do not define a bottom.")
        self.source = make_data_source("folder_layers", "FolderSegDataLayer", self.param_str)

    def reshape(self, bottom, top):
        self.data, self.label = self.source.next()
        top[0].reshape(*self.data.shape)
        top[1].reshape(*self.label.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.data
        top[1].data[...] = self.label

    def backward(self, top, propagate_down, bottom):
        pass
