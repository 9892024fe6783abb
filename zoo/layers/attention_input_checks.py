"""Shape checks of `MultiHeadAttention`'s inputs, run before any projection or kernel.

A rank-2 query used to fail as a bare `IndexError` in `build`, and query and
value of different batch sizes as TensorFlow's `BatchMatMulV2` error; these
checks raise `ValueError`s that name the shapes received and expected.
Static shapes only: unknown dimensions (None) pass, so symbolic and traced
calls with a free batch size are unaffected.
"""

_EXPECTED_INPUTS = {"query": "(B, T, D)", "value": "(B, S, D)", "key": "(B, S, D)"}


def check_attention_inputs(shapes, widths=None, cache_batch=None):
    """Raises a ValueError naming the received and expected shapes of query/value/key.

    `shapes` maps "query", "value", "key" to a static shape or None (not
    given); unknown dimensions (None) pass. `widths` maps the names to the
    last dimension the built projections take; `cache_batch` is a cache's B.
    Runs before any projection, so a bad call never reaches a kernel.
    """
    shapes = {name: tuple(shape) for name, shape in shapes.items() if shape is not None}
    for name, shape in shapes.items():
        if len(shape) != 3:
            raise ValueError(
                f"MultiHeadAttention expects {name} of shape {_EXPECTED_INPUTS[name]} (rank 3). "
                f"Received: {name} of shape {shape}"
            )
    received = ", ".join(f"{name} of shape {shape}" for name, shape in shapes.items())
    batches = {shape[0] for shape in shapes.values() if shape[0] is not None}
    if cache_batch is not None:
        batches.add(cache_batch)
        received += f", a cache of batch size {cache_batch}"
    if len(batches) > 1:
        raise ValueError(
            "MultiHeadAttention expects the same batch size B in query (B, T, D), value (B, S, D) and key "
            f"(B, S, D). Received: {received}"
        )
    lengths = {shapes[n][1] for n in ("value", "key") if n in shapes and shapes[n][1] is not None}
    if len(lengths) > 1:
        raise ValueError(
            f"MultiHeadAttention expects key and value of the same length S. Received: {received}"
        )
    for name, width in (widths or {}).items():
        if name in shapes and shapes[name][-1] is not None and shapes[name][-1] != width:
            raise ValueError(
                f"MultiHeadAttention was built for {name} of width {width}, expected {name} of shape "
                f"(B, {'T' if name == 'query' else 'S'}, {width}). Received: {name} of shape {shapes[name]}"
            )


def check_attention_call(layer, query, value, key, cache, cache_index):
    """`check_attention_inputs` for a call of a built `MultiHeadAttention` `layer`.

    Checks the tensors the call projects (not value/key when a static
    cross-attention cache replaces them) against the widths the layer was
    built for, and a cache's batch size against the query's.
    """
    static_cache = cache is not None and cache_index is None
    shapes = {"query": query.shape}
    if not static_cache:
        shapes["value"] = None if value is None else value.shape
        shapes["key"] = None if key is None else key.shape
    widths = {
        "query": layer.query_dense.kernel.shape[0],
        "value": layer.value_dense.kernel.shape[0],
        "key": layer.key_dense.kernel.shape[0],
    }
    cache_batch = None if cache is None else cache[0].shape[0]
    check_attention_inputs(shapes, widths, cache_batch)
