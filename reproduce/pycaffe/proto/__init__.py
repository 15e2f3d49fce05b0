"""``caffe.proto``: ``caffe_pb2`` (the caffe.proto messages over the project's schema) and
``text_format`` (protobuf's text format for them); ``messages`` holds the machinery."""
from . import caffe_pb2, text_format
from .messages import ProtoMessage, as_plain, as_proto

__all__ = ["ProtoMessage", "as_plain", "as_proto", "caffe_pb2", "text_format"]
