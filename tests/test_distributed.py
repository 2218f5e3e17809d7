import numpy as np

from pft.distributed import _BLOCK, uniforms


def test_uniforms_are_the_block_streams_whatever_the_slicing():
    # Row i gets element i mod 65536 of default_rng([seed, stream, i // 65536]).random(65536):
    # drawn here in full, block by block, and compared with slices that start and end anywhere.
    ref = np.concatenate([np.random.default_rng([4, 9, b]).random(_BLOCK) for b in range(3)])
    for offset, n in [(0, 1), (0, _BLOCK), (_BLOCK - 5, 11), (123, 2 * _BLOCK + 7), (3 * _BLOCK - 1, 1)]:
        assert np.array_equal(uniforms(offset, n, 4, 9), ref[offset : offset + n])
    pieces = np.concatenate([uniforms(a, 1000, 4, 9) for a in range(0, 150_000, 1000)])
    assert np.array_equal(pieces, ref[:150_000])
