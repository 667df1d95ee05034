"""``models.layers.Dropout`` draws exactly flax's masks (its threefry is unrolled, not new)."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from models import layers


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 4, 16, 16)])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.123])
def test_dropout_matches_flax_bit_for_bit(shape, rate):
    x = jax.random.normal(jax.random.key(1), shape)
    rngs = {"dropout": jax.random.key(42)}
    expected = nn.Dropout(rate).apply({}, x, deterministic=False, rngs=rngs)
    ours = jax.jit(lambda x: layers.Dropout(rate).apply(
        {}, x, deterministic=False, rngs=rngs))(x)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(expected))


def test_dropout_is_the_identity_when_deterministic():
    x = jax.random.normal(jax.random.key(1), (4, 8))
    np.testing.assert_array_equal(layers.Dropout(0.5).apply({}, x, deterministic=True), x)
