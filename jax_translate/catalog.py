"""The method catalog: what each method is, as data, one :class:`MethodSpec` per method.

Part of the vocabulary (docs/architecture.md): it imports nothing of the
package. :class:`~jax_translate.training.methods.Method` and the shared
``train_step`` read everything method-specific from here: which generators
and discriminators exist, whether the target discriminator is conditional,
whether the data are paired, the GAN loss, the image pool, the update order,
extra generator-side networks (CUT's projection heads), frozen networks in the
batch (cyclegan-cc's segmenters), the generator objective, named by its key in
``training.objectives.OBJECTIVES`` (resolved in training), and the colour
figures draw it in. Adding a method is adding a spec here and its objective
there.

Settings that some presets change (condgan's reference options) are read off
the config by the spec's functions; everything else is fixed per method.
"""

from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class NCESettings:
    """CUT's PatchNCE weights (patchnce.py); patches, temperature, head width: config fields."""

    lambda_nce: float
    identity: bool  # also NCE(y, G(y)) on target images, averaged with NCE(x, G(x))


def _lsgan(cfg) -> str:
    return "lsgan"


def _pool_size(cfg) -> int:
    return cfg.pool_size


def _no_pool(cfg) -> int:
    return 0


def _never(cfg) -> bool:
    return False


def _always(cfg) -> bool:
    return True


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    name: str
    objective: str                       # key of training.objectives.OBJECTIVES
    summary: str
    color: str = "gray"                  # in every figure (matplotlib colour)
    generators: tuple[str, ...] = ("ab",)  # "ab" (source -> target) is the one evaluated
    discriminators: tuple[str, ...] = ()   # "b" judges target images, "a" source images
    paired: bool = False                 # trains on (source, target) pairs of one slice
    conditional: bool = False            # D "b" sees (source, image) pairs
    gan_loss: Callable = _lsgan          # cfg -> "lsgan" | "vanilla"
    pool_size: Callable = _pool_size     # cfg -> image pool size (0: none)
    discriminator_first: Callable = _never  # cfg -> update D before G
    nce: NCESettings | None = None       # PatchNCE heads on the generator side
    lesion_segmenters: bool = False      # frozen segmenters in the batch (lesion.py)
    paper: bool = False                  # one of Cohen et al.'s four
    gated: bool = True                   # its fidelity gates its flips (quality.py); False:
                                         # nothing ties its output to its input (gan)
    # Config fields this method sets unless a preset or the user does: (field, value) pairs.
    defaults: tuple = ()
    # Its generators start from paired L1 ones, pretrained on pairs from patients outside
    # every target domain (jobs/adapt.py): the pretrain-then-adapt protocol.
    pretrain: bool = False
    # Passes of one step, for flops.py: {"train" | "forward" | "input_grad": count}
    generator_passes: tuple = ()
    discriminator_passes: tuple = ()


SPECS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec("cyclegan", "cycle", color="tab:purple", paper=True,
               summary="LSGAN both ways + cycle + identity L1; unpaired",
               generators=("ab", "ba"), discriminators=("b", "a"),
               generator_passes=(("train", 6),),
               discriminator_passes=(("input_grad", 2), ("train", 4))),
    MethodSpec("condgan", "adversarial", color="tab:orange", paper=True, paired=True,
               conditional=True,
               summary="pix2pix's conditional D on (source, output), no L1; paired",
               discriminators=("b",),
               gan_loss=lambda cfg: cfg.condgan_gan_loss,
               pool_size=lambda cfg: cfg.condgan_pool_size,
               discriminator_first=lambda cfg: cfg.condgan_discriminator_first,
               generator_passes=(("train", 1),),
               discriminator_passes=(("input_grad", 1), ("train", 2))),
    MethodSpec("l1", "pixel_l1", color="tab:green", paper=True, paired=True,
               summary="pixel L1 to the paired target; no D",
               generator_passes=(("train", 1),)),
    MethodSpec("gan", "adversarial", color="tab:brown", paper=True, gated=False,
               summary="LSGAN only; nothing ties output to input; unpaired",
               discriminators=("b",), generator_passes=(("train", 1),),
               discriminator_passes=(("input_grad", 1), ("train", 2))),
    # Park et al. 2020 (patchnce.py; docs/design_notes.md for the reference's defaults):
    # no image pool, D updated before G, LSGAN.
    MethodSpec("cut", "contrastive", color="tab:cyan",
               nce=NCESettings(lambda_nce=1.0, identity=True),
               summary="LSGAN + PatchNCE(x, G(x)) and identity PatchNCE(y, G(y)); unpaired",
               discriminators=("b",), pool_size=_no_pool, discriminator_first=_always,
               # G(x), G(y), encoders of G(x), G(y) (trained) and of x, y (~half a pass each)
               generator_passes=(("train", 3), ("forward", 1)),
               discriminator_passes=(("input_grad", 1), ("train", 2))),
    MethodSpec("fastcut", "contrastive", color="tab:olive",
               nce=NCESettings(lambda_nce=10.0, identity=False),
               summary="LSGAN + 10 x PatchNCE(x, G(x)), no identity term; unpaired",
               discriminators=("b",), pool_size=_no_pool, discriminator_first=_always,
               generator_passes=(("train", 2),),
               discriminator_passes=(("input_grad", 1), ("train", 2))),
    # Pretrain, then adapt (docs/design_notes.md): paired L1 both ways on balanced pairs of
    # patients outside every target domain, then CycleGAN without the identity term on the
    # biased unpaired domains, as a translator is brought to a new site.
    MethodSpec("cyclegan-adapt", "cycle", color="tab:blue", pretrain=True,
               defaults=(("lambda_identity", 0.0),),
               summary="paired L1 pretraining outside the targets, then cyclegan without "
                       "the identity term on the biased domains",
               generators=("ab", "ba"), discriminators=("b", "a"),
               # the identity translations run at weight 0 (the cycle objective's six)
               generator_passes=(("train", 6),),
               discriminator_passes=(("input_grad", 2), ("train", 4))),
    MethodSpec("cyclegan-cc", "cycle_lesion_consistent", color="tab:pink", lesion_segmenters=True,
               summary="cyclegan + lambda_lesion x lesion consistency under frozen "
                       "train-split segmenters; unpaired",
               generators=("ab", "ba"), discriminators=("b", "a"),
               generator_passes=(("train", 6),),
               discriminator_passes=(("input_grad", 2), ("train", 4))),
)}

METHODS = tuple(SPECS)
PAPER_METHODS = tuple(name for name, spec in SPECS.items() if spec.paper)
PAIRED_METHODS = tuple(name for name, spec in SPECS.items() if spec.paired)
