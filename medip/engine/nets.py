"""DIP generators built from MONAI blocks, 2D or 3D from the same code (``spatial_dims``).

Presets (parameter counts for 2D, one output channel, from :func:`count_parameters`):

- ``skip-paper``: Ulyanov et al.'s denoising hourglass, 5 scales of 128 channels, 4 skip
  channels, 32 input channels (~2.2 M parameters).
- ``skip``: the DIP hourglass with channels growing 16-32-64-128-128 (~1.0 M).
- ``fast``: a CPU-sized hourglass, 4 scales of 16-32-32-48 channels, 8 input channels (~0.13 M),
  the default: on a 128x128 CT crop (denoising, 2-core CPU) it peaked at 29.2 dB against
  29.3 dB for ``skip``; the full per-preset benchmark is still to be run.
- ``decoder``: a deep-decoder / ConvDecoder network (upsample, 3x3 conv, ReLU, batch norm) from a
  small input, 64 channels (~0.19 M).

Every preset accepts any image size: the input noise is made for the size rounded up to a
multiple of ``2 ** depth`` and the output is centre-cropped back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
from monai.networks.blocks import Convolution, UpSample
from torch import nn

LEAKY = ("leakyrelu", {"negative_slope": 0.2, "inplace": True})


@dataclass(frozen=True)
class SkipConfig:
    """The hourglass's widths per scale (finest first) and its input channel count;
    ``channels_last``: run 2D fits in the NHWC memory layout (see :data:`PRESETS`)."""

    down: Sequence[int]
    up: Sequence[int]
    skip: Sequence[int]
    input_channels: int = 32
    channels_last: bool = False


@dataclass(frozen=True)
class DecoderConfig:
    """The deep decoder's width, number of upsamplings and input channel count."""

    channels: int = 64
    depth: int = 4
    input_channels: int = field(default=0)  # 0 = same as channels
    channels_last: bool = False


# channels_last: the NHWC layout's speed per 2D step on the 2-core CPU, against NCHW
# (python -m benchmarks.engine layout, benchmarks/results/2026-12-02-vm-layout.md): fast 1.23x
# at 256^2 (1.30x at 128^2, 1.40x at 512^2), decoder 1.20x; skip 1.07x here and 0.93x in a first
# probe, so off; skip-paper unmeasured, off. 3D keeps NCDHW (fast at 48^3: 0.86x).
PRESETS: dict[str, SkipConfig | DecoderConfig] = {
    "skip-paper": SkipConfig((128,) * 5, (128,) * 5, (4,) * 5, 32),
    "skip": SkipConfig((16, 32, 64, 128, 128), (16, 32, 64, 128, 128), (4,) * 5, 32),
    "fast": SkipConfig((16, 32, 32, 48), (16, 32, 32, 48), (4,) * 4, 8, channels_last=True),
    "decoder": DecoderConfig(64, 4, channels_last=True),
}


def _conv(dims: int, cin: int, cout: int, kernel: int = 3, stride: int = 1,
          act: tuple | str | None = LEAKY, norm: str | None = "batch") -> Convolution:
    """MONAI ``Convolution`` (conv -> norm -> act) with reflection padding on the conv."""
    block = Convolution(dims, cin, cout, strides=stride, kernel_size=kernel, act=act, norm=norm,
                        adn_ordering="NA", conv_only=act is None and norm is None)
    if kernel > 1:
        block.conv.padding_mode = "reflect"
    return block


def _upsample(dims: int) -> UpSample:
    return UpSample(dims, scale_factor=2, mode="nontrainable",
                    interp_mode="bilinear" if dims == 2 else "trilinear", align_corners=False)


class _Scale(nn.Module):
    """One hourglass level: ``[skip(x), up(deeper(down(x)))]`` then a fusing convolution."""

    def __init__(self, dims: int, cin: int, down: int, up: int, skip: int,
                 deeper: nn.Module | None, deeper_out: int) -> None:
        super().__init__()
        self.skip = _conv(dims, cin, skip, kernel=1) if skip else None
        self.down = nn.Sequential(_conv(dims, cin, down, stride=2), _conv(dims, down, down))
        self.deeper = deeper
        self.up = _upsample(dims)
        fused = skip + (deeper_out if deeper is not None else down)
        norm_cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        self.fuse = nn.Sequential(norm_cls(fused), _conv(dims, fused, up), _conv(dims, up, up, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = self.down(x)
        if self.deeper is not None:
            deep = self.deeper(deep)
        deep = self.up(deep)
        parts = [self.skip(x), deep] if self.skip is not None else [deep]
        return self.fuse(torch.cat(parts, dim=1))


class SkipNet(nn.Module):
    """The DIP encoder-decoder with skip connections (Ulyanov, Vedaldi, Lempitsky 2018)."""

    def __init__(self, spatial_dims: int, config: SkipConfig, out_channels: int) -> None:
        super().__init__()
        if not len(config.down) == len(config.up) == len(config.skip):
            raise ValueError("SkipNet: down, up and skip need one entry per scale")
        self.depth = len(config.down)
        self.input_channels = config.input_channels
        level, deeper_out = None, 0
        for i in reversed(range(self.depth)):
            cin = config.input_channels if i == 0 else config.down[i - 1]
            level = _Scale(spatial_dims, cin, config.down[i], config.up[i], config.skip[i], level,
                           deeper_out)
            deeper_out = config.up[i]
        self.body = level
        self.head = _conv(spatial_dims, config.up[0], out_channels, kernel=1, act=None, norm=None)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z))


class DeepDecoder(nn.Module):
    """Deep decoder / ConvDecoder: ``depth`` x (upsample, 3x3 conv, ReLU, batch norm), 1x1 head."""

    def __init__(self, spatial_dims: int, config: DecoderConfig, out_channels: int) -> None:
        super().__init__()
        self.depth = config.depth
        self.input_channels = config.input_channels or config.channels
        layers: list[nn.Module] = []
        cin = self.input_channels
        for _ in range(config.depth):
            layers += [_upsample(spatial_dims),
                       Convolution(spatial_dims, cin, config.channels, kernel_size=3, act="relu",
                                   norm="batch", adn_ordering="AN")]
            layers[-1].conv.padding_mode = "reflect"
            cin = config.channels
        layers.append(_conv(spatial_dims, cin, cin, act="relu", norm="batch"))
        layers.append(_conv(spatial_dims, cin, out_channels, kernel=1, act=None, norm=None))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class Generator(nn.Module):
    """A DIP network with its fixed random input ``z``; ``forward(perturb)`` gives the image.

    The output is centre-cropped to ``out_shape`` (the network works on the size rounded up to a
    multiple of ``2 ** depth``). ``perturb`` adds fresh Gaussian noise of that std to ``z``
    (DIP's input regularisation) using ``noise_generator`` for reproducibility.
    """

    def __init__(self, net: nn.Module, out_shape: Sequence[int], batch: int = 1,
                 seed: int = 0) -> None:
        super().__init__()
        self.net, self.out_shape = net, tuple(out_shape)
        depth = getattr(net, "depth", 0)
        multiple = 2 ** depth
        # at least 2 samples at the coarsest scale, so batch norm and reflection padding work
        padded = [max(math.ceil(n / multiple), 2) * multiple for n in self.out_shape]
        if isinstance(net, DeepDecoder):
            padded = [n // multiple for n in padded]
        gen = torch.Generator().manual_seed(seed)
        channels = getattr(net, "input_channels", 32)
        self.register_buffer("z", torch.rand(batch, channels, *padded, generator=gen) * 0.1)
        self.noise_generator: torch.Generator | None = None

    def forward(self, perturb: float = 0.0) -> torch.Tensor:
        z = self.z
        if perturb:
            noise = torch.randn(z.shape, generator=self.noise_generator, device=z.device,
                                dtype=z.dtype)
            z = z + perturb * noise
        return center_crop(self.net(z), self.out_shape)

    def extra_repr(self) -> str:
        return f"out_shape={self.out_shape}, parameters={count_parameters(self):,}"


def center_crop(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Crop the trailing spatial dimensions of ``x`` to ``shape`` around the centre."""
    slices = [slice(None)] * (x.ndim - len(shape))
    for n, target in zip(x.shape[x.ndim - len(shape):], shape):
        start = (n - target) // 2
        slices.append(slice(start, start + target))
    return x[tuple(slices)]


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of a network."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def build_network(preset: str, spatial_dims: int, out_channels: int) -> nn.Module:
    """A preset network (see the module docstring) for 2D or 3D images."""
    if preset not in PRESETS:
        raise ValueError(f"unknown generator preset {preset!r}; choose one of {sorted(PRESETS)} "
                         f"or pass an nn.Module")
    if spatial_dims not in (2, 3):
        raise ValueError(f"generators are 2D or 3D, got {spatial_dims} spatial dimensions")
    config = PRESETS[preset]
    if isinstance(config, DecoderConfig):
        return DeepDecoder(spatial_dims, config, out_channels)
    return SkipNet(spatial_dims, config, out_channels)


def build_generator(generator: str | nn.Module, out_shape: Sequence[int], out_channels: int,
                    batch: int = 1, seed: int = 0) -> Generator:
    """A :class:`Generator` from a preset name or a user network (seeded initialisation)."""
    if isinstance(generator, Generator):
        return generator
    if isinstance(generator, nn.Module):
        net = generator
    else:
        with torch.random.fork_rng(devices=[]):  # seeded weights, caller's RNG untouched
            torch.manual_seed(seed)
            net = build_network(generator, len(out_shape), out_channels)
        if len(out_shape) == 2 and PRESETS[generator].channels_last:
            net = net.to(memory_format=torch.channels_last)
    return Generator(net, out_shape, batch=batch, seed=seed)
