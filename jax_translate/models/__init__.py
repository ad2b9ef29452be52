"""Translation networks.

`build_generator(cfg, conv_impl, precision)` and `build_discriminator(...)`
turn a :class:`~jax_translate.model_config.ModelConfig` (the architecture)
into Flax linen modules that compute their convolutions as ``conv_impl``
("xla" or "patches") on ``precision`` ("fp32" or "bf16") operands.
"""

from __future__ import annotations

from flax import linen as nn

from jax_translate.model_config import ModelConfig
from jax_translate.models.discriminators import PatchDiscriminator
from jax_translate.models.generators import ResnetGenerator, UnetGenerator


def build_generator(cfg: ModelConfig, conv_impl: str = "xla", precision: str = "fp32",
                    out_channels: int = 1) -> nn.Module:
    """The generator named by cfg (input channels follow the input)."""
    if cfg.generator == "resnet":
        return ResnetGenerator(
            out_channels=out_channels, ngf=cfg.ngf, n_blocks=cfg.n_blocks, n_down=cfg.n_down,
            upsample=cfg.upsample, dropout=cfg.dropout, conv_impl=conv_impl, precision=precision,
        )
    return UnetGenerator(
        out_channels=out_channels, ngf=cfg.ngf, num_downs=cfg.num_downs, upsample=cfg.upsample,
        conv_impl=conv_impl, precision=precision,
    )


def build_discriminator(cfg: ModelConfig, conv_impl: str = "xla",
                        precision: str = "fp32") -> nn.Module:
    """The PatchGAN; feed it 2 channels (source, image) for the conditional GAN."""
    return PatchDiscriminator(ndf=cfg.ndf, n_layers=cfg.n_disc_layers, pool=cfg.d_pool,
                              conv_impl=conv_impl, precision=precision)


__all__ = [
    "PatchDiscriminator",
    "ResnetGenerator",
    "UnetGenerator",
    "build_discriminator",
    "build_generator",
]
