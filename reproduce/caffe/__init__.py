"""Caffe's file formats without Caffe: prototxt, binary caffemodel, HDF5 caffemodel.

Imports no torch, so the formats can be read, written and fuzzed on their own.
"""
