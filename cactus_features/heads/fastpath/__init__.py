"""The CPU fast path of full-batch linear heads.

``fused_linear`` (the engine: sharded one-pass epochs over worker threads),
``kernels`` (its Numba kernels), ``snapshots`` (a window of epochs' weights
scored together), ``val_scoring`` (validation loss and AUC of many score vectors)
and ``auc`` (batched ROC AUC in torch).
"""
