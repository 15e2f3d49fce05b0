"""reproduce — the Berkeley Fully Convolutional Networks, Caffe-exact, in PyTorch."""
__version__ = "0.1.0"
