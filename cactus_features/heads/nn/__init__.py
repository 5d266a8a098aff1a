"""Head networks: module and stacked views of a head (``models``), the batched
forward/backward of ``K`` heads (``stacked``) and their Adam optimiser (``adam``)."""
