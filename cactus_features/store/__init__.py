"""On-disk formats: the only package that opens HDF5 files.

Modules:
    :mod:`~cactus_features.store.format`: kinds, format versions, :func:`check_version`,
        attribute codecs and the cache key hash.
    :mod:`~cactus_features.store.rows`: streaming row blocks and their SHA-256.
    :mod:`~cactus_features.store.features`: reading embeddings files (:class:`FeatureSet`).
    :mod:`~cactus_features.store.entries`: writing embeddings files and asking whether
        one is finished.
    :mod:`~cactus_features.store.runs`: the run file (written and read here only).
    :mod:`~cactus_features.store.verify`: re-checking an embeddings file's contents.
"""
