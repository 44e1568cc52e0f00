"""MNIST Budget Lab's core: specs, counting, data, training, run store and prediction.

Importing this package is cheap: TensorFlow and Keras are imported inside the
functions that need them.
"""
