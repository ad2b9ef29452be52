"""The networks' architecture as data: :class:`ModelConfig` and its presets.

Part of the vocabulary (docs/architecture.md): the sweep config holds a
ModelConfig, ``models.build_generator`` / ``build_discriminator`` turn one
into Flax modules. ``MODEL_PRESETS`` holds the paper's sizes ("paper"), sizes
measured to train quickly on a laptop CPU at 64x64 ("cpu"), and a "tiny"
variant so that tests compile and run a training step in seconds.
"""

from __future__ import annotations

import dataclasses

from jax_translate.errors import UsageError

# How the networks compute (the sweep config's conv_impl and precision):
CONV_IMPLS = ("xla", "patches")  # lax.conv, or batched matmuls (models/layers.py)
PRECISIONS = ("fp32", "bf16")    # convs and matmuls on float32 or bfloat16 operands

GENERATORS = ("resnet", "unet")
UPSAMPLES = ("resize", "transpose")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Sizes of the generator and the PatchGAN discriminator.

    n_blocks is used by the ResNet generator only and num_downs by the UNet
    only (which then needs H and W divisible by 2**num_downs).

    Architecture only: how the networks compute (``conv_impl``,
    ``precision``) is the sweep config's, given to ``models.build_*``.
    """

    generator: str = "resnet"
    ngf: int = 64
    n_blocks: int = 9
    # ResNet: stride-2 downsamplings before the blocks (the reference's 2). At 64x64,
    # 2 leave the blocks a 16x16 map, each feature 4x4 pixels wide.
    n_down: int = 2
    num_downs: int = 6
    upsample: str = "resize"
    ndf: int = 64
    n_disc_layers: int = 3
    # The discriminator judges its input averaged over d_pool x d_pool blocks (1: as is):
    # a coarse judge of contrast and anatomy that texture finer than a block cannot fool.
    d_pool: int = 1
    dropout: float = 0.0  # ResNet blocks only: the reference's use_dropout (0.5)

    def __post_init__(self):
        if self.generator not in GENERATORS:
            raise UsageError(f"generator must be one of {GENERATORS}, got {self.generator!r}")
        if self.upsample not in UPSAMPLES:
            raise UsageError(f"upsample must be one of {UPSAMPLES}, got {self.upsample!r}")
        for name in ("ngf", "ndf", "n_disc_layers"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_pool not in (1, 2, 4):
            raise UsageError(f"d_pool must be 1, 2 or 4, got {self.d_pool}")
        if not 0 <= self.n_down <= 4:
            raise UsageError(f"n_down must be in [0, 4], got {self.n_down}")
        if self.n_blocks < 0:
            raise UsageError(f"n_blocks must be >= 0, got {self.n_blocks}")
        if self.num_downs < 5:
            raise UsageError(f"num_downs must be >= 5 (the pix2pix UNet), got {self.num_downs}")
        if not 0.0 <= self.dropout < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dropout and self.generator != "resnet":
            raise UsageError("dropout is implemented for the ResNet generator only")


MODEL_PRESETS: dict[str, ModelConfig] = {
    # The paper's networks: ResNet-9 (ngf 64) and the 70x70 PatchGAN (ndf 64).
    # Upsampling stays resize-conv; set upsample="transpose" for exact parity.
    "paper": ModelConfig(
        generator="resnet", ngf=64, n_blocks=9, upsample="resize", ndf=64, n_disc_layers=3
    ),
    # Same layout, narrower and shallower: a jitted G-then-D forward+backward
    # at 64x64, batch 1, takes ~13-17 ms on a 2-core CPU (ngf 32 or 6 blocks
    # cost 1.3-3x more; timings in the models report).
    "cpu": ModelConfig(
        generator="resnet", ngf=16, n_blocks=3, upsample="resize", ndf=16, n_disc_layers=3
    ),
    # For tests only: compiles and runs a full step in seconds.
    "tiny": ModelConfig(
        generator="resnet", ngf=4, n_blocks=1, upsample="resize", ndf=4, n_disc_layers=2
    ),
}
