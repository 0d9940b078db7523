"""MidasNet_small exactly as upstream isl-org/MiDaS v2.1 builds it (build-time only: needs torch + geffnet).

Mirrors ``midas/midas_net_custom.py`` and ``midas/blocks.py`` with the options MiDaS_small uses:
features=64, backbone=efficientnet_lite3, exportable=True, non_negative=True, blocks={"expand": True},
align_corners=True. Module names match upstream so the official state dict loads with ``strict=True``.
"""

from __future__ import annotations

import geffnet
import torch
from torch import nn

BACKBONE_CHANNELS = (32, 48, 136, 384)
FEATURES = 64


def make_efficientnet_lite3_backbone() -> nn.Module:
    """tf_efficientnet_lite3 split into layer1..layer4 as upstream's ``_make_efficientnet_backbone``."""
    effnet = geffnet.tf_efficientnet_lite3(pretrained=False, exportable=True)
    pretrained = nn.Module()
    pretrained.layer1 = nn.Sequential(effnet.conv_stem, effnet.bn1, effnet.act1, *effnet.blocks[0:2])
    pretrained.layer2 = nn.Sequential(*effnet.blocks[2:3])
    pretrained.layer3 = nn.Sequential(*effnet.blocks[3:5])
    pretrained.layer4 = nn.Sequential(*effnet.blocks[5:9])
    return pretrained


class Interpolate(nn.Module):
    """Upstream ``blocks.Interpolate`` (align_corners defaults to False)."""

    def __init__(self, scale_factor: float, mode: str, align_corners: bool = False) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(
            x, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners
        )


class ResidualConvUnitCustom(nn.Module):
    """Upstream ``ResidualConvUnit_custom`` with bn=False, groups=1."""

    def __init__(self, features: int, activation: nn.Module) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1, bias=True)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.activation(self.conv1(self.activation(x))))
        return out + x


class FeatureFusionBlockCustom(nn.Module):
    """Upstream ``FeatureFusionBlock_custom`` (deconv=False, bn=False, bilinear x2 upsample)."""

    def __init__(self, features: int, activation: nn.Module, expand: bool, align_corners: bool = True) -> None:
        super().__init__()
        self.align_corners = align_corners
        out_features = features // 2 if expand else features
        self.out_conv = nn.Conv2d(features, out_features, kernel_size=1, stride=1, padding=0, bias=True)
        self.resConfUnit1 = ResidualConvUnitCustom(features, activation)
        self.resConfUnit2 = ResidualConvUnitCustom(features, activation)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        output = xs[0]
        if len(xs) == 2:
            output = output + self.resConfUnit1(xs[1])
        output = self.resConfUnit2(output)
        output = nn.functional.interpolate(output, scale_factor=2, mode="bilinear", align_corners=self.align_corners)
        return self.out_conv(output)


def _make_scratch(in_shape: tuple[int, ...], features: int) -> nn.Module:
    """Upstream ``_make_scratch(..., expand=True)``: 3x3 convs without bias to features x 1, 2, 4, 8."""
    scratch = nn.Module()
    for i, (in_ch, mult) in enumerate(zip(in_shape, (1, 2, 4, 8), strict=True), start=1):
        setattr(scratch, f"layer{i}_rn", nn.Conv2d(in_ch, features * mult, kernel_size=3, padding=1, bias=False))
    return scratch


class MidasNetSmall(nn.Module):
    """MidasNet_small(features=64, backbone="efficientnet_lite3", exportable=True, non_negative=True, expand)."""

    def __init__(self, features: int = FEATURES) -> None:
        super().__init__()
        self.pretrained = make_efficientnet_lite3_backbone()
        self.scratch = _make_scratch(BACKBONE_CHANNELS, features)
        self.scratch.activation = nn.ReLU(False)
        act = self.scratch.activation
        self.scratch.refinenet4 = FeatureFusionBlockCustom(features * 8, act, expand=True)
        self.scratch.refinenet3 = FeatureFusionBlockCustom(features * 4, act, expand=True)
        self.scratch.refinenet2 = FeatureFusionBlockCustom(features * 2, act, expand=True)
        self.scratch.refinenet1 = FeatureFusionBlockCustom(features, act, expand=False)
        self.scratch.output_conv = nn.Sequential(
            nn.Conv2d(features, features // 2, kernel_size=3, stride=1, padding=1),
            Interpolate(scale_factor=2, mode="bilinear"),
            nn.Conv2d(features // 2, 32, kernel_size=3, stride=1, padding=1),
            act,
            nn.Conv2d(32, 1, kernel_size=1, stride=1, padding=0),
            nn.ReLU(True),
            nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer_1 = self.pretrained.layer1(x)
        layer_2 = self.pretrained.layer2(layer_1)
        layer_3 = self.pretrained.layer3(layer_2)
        layer_4 = self.pretrained.layer4(layer_3)

        path_4 = self.scratch.refinenet4(self.scratch.layer4_rn(layer_4))
        path_3 = self.scratch.refinenet3(path_4, self.scratch.layer3_rn(layer_3))
        path_2 = self.scratch.refinenet2(path_3, self.scratch.layer2_rn(layer_2))
        path_1 = self.scratch.refinenet1(path_2, self.scratch.layer1_rn(layer_1))
        return torch.squeeze(self.scratch.output_conv(path_1), dim=1)
