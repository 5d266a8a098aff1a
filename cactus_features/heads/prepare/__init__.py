"""Data preparation: from a feature cache to the rows a solver trains on.

``data`` (split rows, checks, the training tensors), ``class_weights`` (the
weighted loss's class weights) and ``standardize`` (training-split statistics).
"""
