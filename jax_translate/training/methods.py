"""The translation methods, as pure functions of one member.

Every method has a generator ``ab`` (source -> target, Flair -> T1 by default: the
translator we evaluate);
what else it has and how it scores it is its spec (:mod:`jax_translate.catalog`: the paper's
cyclegan, gan, condgan and l1, and cut, fastcut and cyclegan-cc) and its
objective (:mod:`objectives`). ``train_step`` is shared: update the
generators on their loss, then the discriminators on real images and pooled
fakes made by the generators *before* their update (as the reference code
does for CycleGAN). Methods whose spec says ``discriminator_first`` (condgan
with ``condgan_discriminator_first``, as the reference's pix2pix; cut and
fastcut, as the CUT code) update D first and then G against the updated D.

The generator-side params are ``{"ab", ["ba"], ["nce_head"]}`` (CUT's
projection heads train with G's optimizer, as the reference's netF with the
same Adam settings); the discriminators' are ``{"b", ["a"]}``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from jax_translate.catalog import SPECS, MethodSpec
from jax_translate.config import SweepConfig
from jax_translate.models import build_discriminator, build_generator
from jax_translate.models.projection import ProjectionHead
from jax_translate.training import augment, image_pool, objectives, optim
from jax_translate.training.hparams import HParams, for_config
from jax_translate.training.losses import GAN_LOSSES

# Dropout keys per step: the most translations any objective runs (cyclegan's
# and cut's six). Fixed, so that every method draws the same keys it always did.
DROPOUT_PASSES = 6

Params = Any


@flax.struct.dataclass
class Batch:
    source: jnp.ndarray  # (B, H, W, 1) source modality (Flair) in [-1, 1]
    target: jnp.ndarray  # (B, H, W, 1) target modality (T1) in [-1, 1]; source's pair if paired
    frozen: dict | None = None  # frozen networks' params an objective uses (cyclegan-cc)


@flax.struct.dataclass
class TrainState:
    """Everything one member carries from step to step."""

    step: jnp.ndarray                 # int32
    generator: Params                 # {"ab": ..., "ba": ..., "nce_head": ...}
    discriminator: Params             # {"b": ..., "a": ...}, possibly empty
    generator_opt: optax.OptState
    discriminator_opt: optax.OptState
    pools: dict                       # one image pool per discriminator
    key: jax.Array                    # the member's own stream (raw uint32 key)
    diverged: jnp.ndarray             # bool: frozen after a non-finite loss or param


@dataclasses.dataclass(frozen=True)
class Parts:
    """What an experiment hands in instead of what the config builds (None: the config's).

    As Flax code passes modules and apply functions around: ``generator`` and
    ``discriminator`` are linen modules called like the built ones (the
    generator with ``train``, ``rngs`` and, for PatchNCE, ``encode_only``);
    ``discriminator_optimizer`` is a function of the config that returns the
    discriminators' optax transformation (the generators keep the config's
    Adam). Modules and functions compare by value or identity, so a Method
    with parts stays hashable.
    """

    generator: nn.Module | None = None
    discriminator: nn.Module | None = None
    discriminator_optimizer: Callable[[SweepConfig], optax.GradientTransformation] | None = None


@dataclasses.dataclass(frozen=True)
class Method:
    """Static description of a method; hashable so it can be a jit constant.

    ``conv_impl`` is how its networks compute their convolutions, resolved
    by the engine (``engine.plan``); the sweep's ``precision``
    is the config's. ``parts`` replaces networks or an optimizer (:class:`Parts`).
    Its spec and networks are built once per Method (cached on the instance; equality
    and hashing read the fields only).
    """

    cfg: SweepConfig
    conv_impl: str = "xla"
    parts: Parts = Parts()

    @property
    def name(self) -> str:
        return self.cfg.method

    @functools.cached_property
    def spec(self) -> MethodSpec:
        return SPECS[self.name]

    @property
    def generators(self) -> tuple[str, ...]:
        return self.spec.generators

    @property
    def discriminators(self) -> tuple[str, ...]:
        return self.spec.discriminators

    @property
    def pool_size(self) -> int:
        return self.spec.pool_size(self.cfg)

    @property
    def gan_loss(self):
        return GAN_LOSSES[self.spec.gan_loss(self.cfg)]

    @property
    def discriminator_first(self) -> bool:
        return self.spec.discriminator_first(self.cfg)

    @property
    def precision(self) -> str:
        return self.cfg.precision

    @functools.cached_property
    def generator_net(self) -> nn.Module:
        if self.parts.generator is not None:
            return self.parts.generator
        return build_generator(self.cfg.model, self.conv_impl, self.precision)

    @functools.cached_property
    def discriminator_net(self) -> nn.Module:
        if self.parts.discriminator is not None:
            return self.parts.discriminator
        return build_discriminator(self.cfg.model, self.conv_impl, self.precision)

    @functools.cached_property
    def head_net(self) -> ProjectionHead:
        return ProjectionHead(self.cfg.nce_head_features)

    @property
    def uses_r1(self) -> bool:
        """Whether the discriminators' loss has an R1 term (its weight is each member's)."""
        return bool(self.discriminators) and (self.cfg.r1_weight > 0
                                              or self.cfg.gridded("r1_weight"))

    @property
    def uses_augment(self) -> bool:
        """Whether discriminators see augmented images (the probability is each member's)."""
        return bool(self.discriminators) and (self.cfg.augment_p > 0
                                              or self.cfg.gridded("augment_p"))

    def optimizer(self) -> optax.GradientTransformation:
        """The generators' Adam (and the discriminators', unless parts hand in another),
        at peak rate 1: each member's rate (:class:`HParams`) scales its updates."""
        c = self.cfg
        return optim.adam(1.0, c.steps, c.decay_fraction, c.beta1)

    def discriminator_optimizer(self) -> optax.GradientTransformation:
        if self.parts.discriminator_optimizer is not None:
            return self.parts.discriminator_optimizer(self.cfg)
        return self.optimizer()

    # ------------------------------------------------------------------ init

    def init(self, key: jax.Array, image_shape: tuple[int, int]) -> TrainState:
        """A fresh member state from its key (the same key gives the same state)."""
        init_key, train_key = jax.random.split(key)
        g_keys = dict(zip(("ab", "ba"), jax.random.split(jax.random.fold_in(init_key, 0))))
        d_keys = dict(zip(("b", "a"), jax.random.split(jax.random.fold_in(init_key, 1))))
        image = jnp.zeros((1, *image_shape, 1), jnp.float32)
        d_input = jnp.concatenate([image, image], -1) if self.spec.conditional else image
        generator = {g: self.generator_net.init(g_keys[g], image)["params"]
                     for g in self.generators}
        if self.spec.nce is not None:
            features = jax.eval_shape(functools.partial(  # their widths, nothing computed
                self.generator_net.apply, encode_only=True), {"params": generator["ab"]}, image)
            head_keys = jax.random.split(jax.random.fold_in(init_key, 2), len(features))
            generator["nce_head"] = {
                str(i): self.head_net.init(k, jnp.zeros((1, f.shape[-1])))["params"]
                for i, (k, f) in enumerate(zip(head_keys, features))}
        discriminator = {d: self.discriminator_net.init(d_keys[d], d_input)["params"]
                         for d in self.discriminators}
        # No pool at all when its size is 0: checkpoints cannot hold empty arrays.
        pools = {d: image_pool.init_pool(self.pool_size, d_input.shape[1:])
                 for d in self.discriminators if self.pool_size > 0}
        return TrainState(
            step=jnp.zeros((), jnp.int32), generator=generator, discriminator=discriminator,
            generator_opt=self.optimizer().init(generator),
            discriminator_opt=(self.discriminator_optimizer().init(discriminator)
                               if discriminator else ()),  # l1: none
            pools=pools, key=train_key, diverged=jnp.zeros((), bool))

    # ---------------------------------------------------------------- losses

    def translate(self, generator: Params, images: jnp.ndarray, name: str = "ab",
                  dropout_key: jax.Array | None = None, encode_only: bool = False):
        """Generator ``name`` on images; a ``dropout_key`` (training only) turns dropout on.

        ``encode_only``: its PatchNCE feature maps instead (a list; ResNet only).
        """
        variables = {"params": generator[name]}
        extra = {"encode_only": True} if encode_only else {}
        if dropout_key is None or not self.cfg.model.dropout:
            return self.generator_net.apply(variables, images, **extra)
        return self.generator_net.apply(variables, images, train=True,
                                        rngs={"dropout": dropout_key}, **extra)

    def project(self, generator: Params, layer: int, vectors: jnp.ndarray) -> jnp.ndarray:
        """CUT's projection head of feature layer ``layer`` on (..., C) vectors."""
        return self.head_net.apply({"params": generator["nce_head"][str(layer)]}, vectors)

    def conditioned(self, source, images):
        """What D "b" sees: (source, image) pairs if conditional (also in its pool), else images."""
        return jnp.concatenate([source, images], -1) if self.spec.conditional else images

    def score(self, discriminator: Params, name: str, images, augment_key=None,
              augment_p=None):
        """Discriminator ``name``'s patch scores of ``images``; with a key (training, when
        :attr:`uses_augment`), of the images augmented with probability ``augment_p``."""
        if augment_key is not None and self.uses_augment:
            images = augment.diff_augment(images, augment_key, augment_p,
                                          background=self.cfg.intensity_range[0])
        return self.discriminator_net.apply({"params": discriminator[name]}, images)

    def generator_loss(self, generator: Params, discriminator: Params, batch: Batch,
                       keys: "StepKeys | None" = None, hp: HParams | None = None):
        """(loss, (metrics, fakes)); fakes are what the discriminators train on.

        ``keys`` (training only) are the step's keys: dropout, patch sampling and
        augmentation; ``hp`` the member's knobs (None: the config's).
        """
        hp = for_config(self.cfg) if hp is None else hp
        dropout = (iter(jax.random.split(keys.dropout, DROPOUT_PASSES))
                   if keys is not None else None)
        judged = iter(range(len(self.discriminators)))

        def translate(images, name, encode_only=False):
            return self.translate(generator, images, name, next(dropout) if dropout else None,
                                  encode_only=encode_only)

        def judge(name, images):
            """The generator's view of discriminator ``name``'s scores of its fakes."""
            key = (jax.random.fold_in(keys.augment, next(judged)) if keys is not None else None)
            return self.score(discriminator, name, images, key, hp.augment_p)

        objective = objectives.OBJECTIVES[self.spec.objective]
        loss, metrics, fakes = objective(self, generator, batch, translate, judge, hp, keys)
        return loss, (metrics, fakes)

    def discriminator_loss(self, discriminator: Params, batch: Batch, fakes: dict,
                           hp: HParams | None = None, augment_key: jax.Array | None = None):
        """Half the sum of real and fake terms for each discriminator, summed, plus
        (``uses_r1``) ``r1_weight / 2`` times the mean squared gradient norm of its
        mean score at the real images (Mescheder et al. 2018, un-augmented reals)."""
        hp = for_config(self.cfg) if hp is None else hp
        reals = {"b": self.conditioned(batch.source, batch.target), "a": batch.source}
        total, metrics = 0.0, {}
        for i, d in enumerate(self.discriminators):
            keys = (jax.random.split(jax.random.fold_in(augment_key, 100 + i))
                    if augment_key is not None else (None, None))
            real = self.gan_loss(self.score(discriminator, d, reals[d], keys[0], hp.augment_p),
                                 True)
            fake = self.gan_loss(self.score(discriminator, d, fakes[d], keys[1], hp.augment_p),
                                 False)
            total = total + 0.5 * (real + fake)
            if self.uses_r1:
                grads = jax.vmap(jax.grad(lambda x: jnp.mean(self.score(
                    discriminator, d, x[None]))))(reals[d])
                penalty = jnp.mean(jnp.sum(jnp.square(grads), axis=(1, 2, 3)))
                metrics[f"r1_{d}"] = penalty
                total = total + 0.5 * hp.r1_weight * penalty
        return total, {"discriminator_loss": total, **metrics}


def _all_finite(tree) -> jnp.ndarray:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _update(params, grads, opt_state, opt, learning_rate):
    """One optimizer step whose updates (at peak rate 1) are scaled by the member's rate."""
    updates, opt_state = opt.update(grads, opt_state, params)
    updates = jax.tree_util.tree_map(lambda u: learning_rate * u, updates)
    return optax.apply_updates(params, updates), opt_state


@flax.struct.dataclass
class StepKeys:
    """Every random key of one member's step, derived here and nowhere else."""

    batch: jax.Array      # which source and target images
    dropout: jax.Array    # the generators' dropout (split further per call)
    pools: jax.Array      # the image pools (folded with the pool's index)
    patches: jax.Array    # PatchNCE's patch locations (cut, fastcut)
    augment: jax.Array    # the discriminators' input augmentation (augment_p)
    cycle_noise: jax.Array  # noise on translations before the cycle maps them back


def step_keys(member_key: jax.Array, step: jnp.ndarray) -> StepKeys:
    """The keys of step ``step`` of the member whose key (from its seed) is ``member_key``."""
    key = jax.random.fold_in(member_key, step)
    return StepKeys(batch=jax.random.fold_in(key, 1 << 20), dropout=jax.random.fold_in(key, 7919),
                    pools=key, patches=jax.random.fold_in(key, 104729),
                    augment=jax.random.fold_in(key, 15485863),
                    cycle_noise=jax.random.fold_in(key, 32452843))


def _update_discriminators(method: Method, state: TrainState, batch: Batch, opt,
                           keys: StepKeys, hp: HParams, fakes: dict):
    """(discriminator, its optimizer state, pools, metrics) after one step on pooled ``fakes``."""
    fakes = jax.lax.stop_gradient(fakes)
    pools, pooled = {}, dict(fakes)
    for i, d in enumerate(state.pools):
        pools[d], pooled[d] = image_pool.query_pool(
            state.pools[d], fakes[d], jax.random.fold_in(keys.pools, i))
    (_, d_metrics), d_grads = jax.value_and_grad(method.discriminator_loss, has_aux=True)(
        state.discriminator, batch, pooled, hp, keys.augment)
    discriminator, discriminator_opt = _update(
        state.discriminator, d_grads, state.discriminator_opt, opt,
        hp.discriminator_learning_rate)
    return discriminator, discriminator_opt, pools, d_metrics


def train_step(method: Method, state: TrainState, batch: Batch, active: jnp.ndarray,
               hp: HParams | None = None) -> tuple[TrainState, dict]:
    """One optimizer step of one member with knobs ``hp`` (None: the config's).

    The new state is kept only if ``active`` and everything is finite; a member that
    produces a NaN or inf is frozen and flagged ``diverged`` from then on, so
    it can never affect anything else.
    """
    hp = for_config(method.cfg) if hp is None else hp
    keys = step_keys(state.key, state.step)
    d_update = functools.partial(_update_discriminators, method, state, batch,
                                 method.discriminator_optimizer(), keys, hp)
    discriminator, discriminator_opt, pools, d_metrics = (
        state.discriminator, state.discriminator_opt, state.pools, {})
    if method.discriminator_first:
        # D on this step's fakes, then G against the updated D; the same dropout
        # key makes G's second forward pass produce the same fakes.
        _, (_, fakes) = method.generator_loss(state.generator, state.discriminator, batch,
                                              keys, hp)
        discriminator, discriminator_opt, pools, d_metrics = d_update(fakes)
    (g_loss, (metrics, fakes)), g_grads = jax.value_and_grad(
        method.generator_loss, has_aux=True)(state.generator, discriminator, batch, keys, hp)
    generator, generator_opt = _update(state.generator, g_grads, state.generator_opt,
                                       method.optimizer(), hp.learning_rate)
    if method.discriminators and not method.discriminator_first:
        discriminator, discriminator_opt, pools, d_metrics = d_update(fakes)
    metrics = {"generator_loss": g_loss, **metrics, **d_metrics}

    new = state.replace(step=state.step + 1, generator=generator, discriminator=discriminator,
                        generator_opt=generator_opt, discriminator_opt=discriminator_opt,
                        pools=pools)
    finite = _all_finite((metrics, generator, discriminator))
    keep = active & ~state.diverged & finite
    out = jax.tree_util.tree_map(lambda n, o: jnp.where(keep, n, o), new, state)
    out = out.replace(diverged=state.diverged | (active & ~finite))
    return out, metrics
