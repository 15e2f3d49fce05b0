"""Datasets of the reference release, its sample order, and generated demo data.

Mirrors the Python data layers of fcn.berkeleyvision.org (``voc_layers``,
``siftflow_layers``, ``nyud_layers``, ``pascalcontext_layers``): the same files, the same
preprocessing, the same order. ``make_data_source`` builds one from a prototxt's
``python_param``; ``make_synthetic_dataset`` writes a small learnable dataset in the VOC
and SBD layouts. Imports no torch (``reproduce.data.torch_loader`` is the torch bridge).
"""
from .errors import DatasetError, SampleError
from .param_str import ParamStrError, parse_param_str
from .registry import DATA_LAYERS, DataSource, UnknownDataLayerError, make_data_source
from .sampler import ReferenceSampler
from .synthetic import SyntheticDataset, classification_samples, make_synthetic_dataset
from .voc import VOC_CLASSES, VOC_MEAN_BGR, SBDSegmentation, VOCSegmentation

__all__ = [
    "DatasetError", "SampleError", "ParamStrError", "parse_param_str", "DATA_LAYERS", "DataSource",
    "UnknownDataLayerError", "make_data_source", "ReferenceSampler", "SyntheticDataset",
    "classification_samples", "make_synthetic_dataset", "VOC_CLASSES", "VOC_MEAN_BGR",
    "SBDSegmentation", "VOCSegmentation",
]
