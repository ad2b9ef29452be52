"""jax_translate: does an image translator invent or erase disease when its
training data is biased, and by how much? Vectorised JAX ratio sweeps that
reproduce Cohen, Luck & Honari (MICCAI 2018).

Data flows: ``data`` (simulator / BraTS -> TFDS -> SliceSet -> biased domains)
-> ``training`` (one compiled step for every member of a sweep) ->
``evaluation`` (classifier flips, pixel and lesion metrics, figures).
"""

import jax

# jax >= 0.5 defaults to the "partitionable" threefry, which XLA's CPU backend
# compiles ~2 s per distinct random-draw shape; model init draws a dozen
# shapes. The classic threefry compiles in a fraction of that. It only
# changes which random numbers a key gives, never their distribution.
try:
    jax.config.update("jax_threefry_partitionable", False)
except AttributeError:  # a jax without the option has only one threefry
    pass

__version__ = "0.1.0"
