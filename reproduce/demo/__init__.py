"""The demo: the whole staged pipeline at small scale on generated data (``pipeline``),
starting from a VGG16-shaped classifier it trains and releases as VGG16 was (``classifier``)."""
