"""The original DIP "skip" hourglass (Ulyanov et al. 2018, denoising setting) in plain torch.

A speed reference for the benchmark suite, written from the paper's description without MONAI
or any medip block: 5 scales of 128 channels, 4 skip channels, 3x3 convolutions with reflection
padding, batch norm, LeakyReLU(0.2), stride-2 downsampling, bilinear upsampling, 32 input
channels. The final sigmoid is left out because medip's normalised data are signed (CT in HU).
"""

from __future__ import annotations

from torch import nn
import torch


def _block(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


class _Level(nn.Module):
    def __init__(self, cin: int, down: int, skip: int, up: int, deeper: nn.Module | None,
                 deeper_out: int) -> None:
        super().__init__()
        self.skip = _block(cin, skip, 1)
        self.down = nn.Sequential(_block(cin, down, 3, 2), _block(down, down, 3))
        self.deeper = deeper
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.merge = nn.Sequential(nn.BatchNorm2d(skip + deeper_out), _block(skip + deeper_out, up, 3),
                                   _block(up, up, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.down(x)
        if self.deeper is not None:
            low = self.deeper(low)
        return self.merge(torch.cat((self.skip(x), self.upsample(low)), 1))


class PlainSkip(nn.Module):
    """``(B, 32, H, W) -> (B, out_channels, H, W)`` for ``H, W`` multiples of 32."""

    depth = 5
    input_channels = 32

    def __init__(self, out_channels: int = 1, width: int = 128, skip: int = 4) -> None:
        super().__init__()
        level = None
        for i in reversed(range(self.depth)):
            cin = self.input_channels if i == 0 else width
            level = _Level(cin, width, skip, width, level, width)
        self.body = level
        self.head = nn.Conv2d(width, out_channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z))
