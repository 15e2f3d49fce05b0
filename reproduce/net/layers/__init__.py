"""Caffe layers as PyTorch modules, one module per layer concept, registered by Caffe type.

Importing this package registers every layer; ``layer_class(type, layer_name)`` finds one.
"""
from . import (accuracy, batch_norm, bias, concat, convolution, crop, deconvolution, dropout,
               dummy_data, eltwise, flatten, inner_product, input, lrn, memory_data, pooling,
               power, relu, reshape, scale, sigmoid, silence, slice, softmax, softmax_loss, split,
               tanh)
# the remaining compute layers of BVLC Caffe (issue 23)
from . import (absval, argmax, batch_reindex, bnll, clip, elu, embed, exp, filter, im2col, log,
               mvn, parameter, prelu, reduction, spp, swish, threshold, tile)
from . import (contrastive_loss, euclidean_loss, hinge_loss, infogain_loss,
               multinomial_logistic_loss, recurrent, sigmoid_cross_entropy_loss)
# Caffe's data layers, and the fork layers OpenCV 4.x's Caffe importer reads (DeepLab, SSD)
from . import (data, detection_output, hdf5_data, image_data, interp, normalize, permute,
               prior_box, window_data)
from .base import CaffeLayer, LayerError, blob_attribute
from .registry import UnsupportedLayerError, layer_class, register, registered_types

__all__ = ["CaffeLayer", "LayerError", "UnsupportedLayerError", "blob_attribute", "layer_class",
           "register", "registered_types"]
