"""The generator objective of each method: (loss, metrics, fakes) of one batch.

Every objective has the signature ``objective(method, generator, batch,
translate, judge, hp, keys)``: ``method`` is the
:class:`~jax_translate.training.methods.Method` (its config, GAN loss and
networks), ``translate(images, name)`` runs generator ``name`` with the next
dropout key, ``judge(name, images)`` gives discriminator ``name``'s scores of
fakes as the generator is graded (augmented when the run augments), ``hp``
the member's knobs (:class:`~jax_translate.training.hparams.HParams`: loss
weights are read there, never from the config) and ``keys`` the step's
:class:`~jax_translate.training.methods.StepKeys` (None outside training).
``fakes`` holds what each discriminator trains on. A method's spec
(:mod:`jax_translate.catalog`) names its objective by its key in
:data:`OBJECTIVES`.
"""

from __future__ import annotations

import jax

from jax_translate.training import lesion, patchnce
from jax_translate.training.losses import l1_loss

# Patch locations outside training (keys None): fixed, so a loss is repeatable.
EVAL_PATCH_KEY = 0


def pixel_l1(method, generator, batch, translate, judge, hp, keys):
    """l1: pixel L1 to the paired target only."""
    fake_b = translate(batch.source, "ab")
    metrics = {"l1_loss": l1_loss(fake_b, batch.target)}
    return metrics["l1_loss"], metrics, {}


def _adversarial_b(method, judge, batch, fake_b, fakes):
    """G_ab's GAN loss against D "b" (which sees (source, image) pairs if conditional)."""
    fakes["b"] = method.conditioned(batch.source, fake_b)
    return method.gan_loss(judge("b", fakes["b"]), True)


def adversarial(method, generator, batch, translate, judge, hp, keys):
    """gan and condgan: the GAN loss of G_ab only (its weight is moot under Adam)."""
    fakes = {}
    adv = _adversarial_b(method, judge, batch, translate(batch.source, "ab"), fakes)
    return hp.gan_weight * adv, {"adversarial_loss": adv}, fakes


def _noisy(images, key, std):
    """``images`` plus N(0, std^2) noise (training only: no key, no noise)."""
    if key is None:
        return images
    return images + std * jax.random.normal(key, images.shape, images.dtype)


def _cycle_terms(method, batch, translate, judge, hp, keys):
    """CycleGAN's (loss, metrics, fakes, fake_b, fake_a); the order of the translations
    is the order of the dropout keys, so it is part of the result. Translations are
    cycled back with ``hp.cycle_noise`` added (against steganography: config.py)."""
    a, b = batch.source, batch.target
    noise_keys = (jax.random.split(keys.cycle_noise) if keys is not None else (None, None))
    lam, lam_id = hp.lambda_cycle, hp.lambda_identity * hp.lambda_cycle
    fakes = {}
    fake_b = translate(a, "ab")
    adv = _adversarial_b(method, judge, batch, fake_b, fakes)
    fake_a = translate(b, "ba")
    fakes["a"] = fake_a
    adv = adv + method.gan_loss(judge("a", fake_a), True)
    metrics = {"cycle_loss": (
                   l1_loss(translate(_noisy(fake_b, noise_keys[0], hp.cycle_noise), "ba"), a)
                   + l1_loss(translate(_noisy(fake_a, noise_keys[1], hp.cycle_noise), "ab"), b)),
               "identity_loss": l1_loss(translate(b, "ab"), b) + l1_loss(translate(a, "ba"), a),
               "adversarial_loss": adv}
    loss = (hp.gan_weight * adv + lam * metrics["cycle_loss"]
            + lam_id * metrics["identity_loss"])
    return loss, metrics, fakes, fake_b, fake_a


def cycle(method, generator, batch, translate, judge, hp, keys):
    """cyclegan: gan_weight * LSGAN both ways + lambda * cycle + lambda_identity * lambda *
    identity."""
    loss, metrics, fakes, _, _ = _cycle_terms(method, batch, translate, judge, hp, keys)
    return loss, metrics, fakes


def cycle_lesion_consistent(method, generator, batch, translate, judge, hp, keys):
    """cyclegan-cc: cyclegan + lambda_lesion * lesion_loss (:mod:`lesion`)."""
    loss, metrics, fakes, fake_b, fake_a = _cycle_terms(method, batch, translate, judge, hp,
                                                        keys)
    if batch.frozen is None:
        raise ValueError("cyclegan-cc needs the lesion segmenters in the batch "
                         "(members.build_members attaches them)")
    cfg = method.cfg
    scale = dict(intensity_range=cfg.intensity_range, upscale=cfg.upscale)
    metrics["lesion_loss"] = (
        lesion.lesion_consistency(batch.frozen, batch.source, fake_b, "source", **scale)
        + lesion.lesion_consistency(batch.frozen, batch.target, fake_a, "target", **scale))
    return loss + cfg.lambda_lesion * metrics["lesion_loss"], metrics, fakes


def contrastive(method, generator, batch, translate, judge, hp, keys):
    """cut / fastcut: LSGAN + PatchNCE(a, G(a)) [+ PatchNCE(b, G(b)), averaged] (patchnce.py)."""
    a, b = batch.source, batch.target
    cfg, nce = method.cfg, method.spec.nce
    fakes = {}
    fake_b = translate(a, "ab")
    adv = _adversarial_b(method, judge, batch, fake_b, fakes)
    identity_b = translate(b, "ab") if nce.identity else None
    key = keys.patches if keys is not None else jax.random.PRNGKey(EVAL_PATCH_KEY)

    def head(layer, vectors):
        return method.project(generator, layer, vectors)

    def nce_loss(source, translation, salt):
        # The translation's features first, as the reference (feat_q, then feat_k).
        translation_features = translate(translation, "ab", encode_only=True)
        source_features = translate(source, "ab", encode_only=True)
        return patchnce.nce_loss(head, source_features, translation_features,
                                 jax.random.fold_in(key, salt), cfg.nce_patches,
                                 cfg.nce_temperature, nce.lambda_nce)

    metrics = {"adversarial_loss": adv, "nce_loss": nce_loss(a, fake_b, 0)}
    nce_total = metrics["nce_loss"]
    if nce.identity:
        metrics["nce_identity_loss"] = nce_loss(b, identity_b, 1)
        nce_total = 0.5 * (nce_total + metrics["nce_identity_loss"])
    return hp.gan_weight * adv + nce_total, metrics, fakes


# The catalog's objective keys (MethodSpec.objective) -> the functions above.
OBJECTIVES = {f.__name__: f for f in (pixel_l1, adversarial, cycle, cycle_lesion_consistent,
                                      contrastive)}
