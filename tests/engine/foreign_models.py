"""BNNs written the way other code writes them, for the front-door tests (not dwr's layers).

- :class:`AuthorsStyleNet`: the DWR authors' Bi-Real code style: a ``HardBinaryConv`` whose
  weight is a flat ``nn.Parameter`` reshaped in ``forward``, a piecewise-polynomial
  ``BinaryActivation`` with the detach trick, ``nn.PReLU``, average-pool downsampling and the
  ``Convalg`` stem adapter (depthwise 1x1 + BN, concat with the input, slice, PReLU).
- :class:`PlainSignNet`: ``torch.sign`` with a straight-through detach, VGG-like, Hardtanh.
- :class:`FunctionSignNet`: a custom ``torch.autograd.Function`` binarizer in a Conv2d
  subclass, ReActNet-style learnable shifts and RPReLU, strided 1x1 shortcuts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BinaryActivation(nn.Module):
    def forward(self, x):
        out_forward = torch.sign(x)
        mask1 = x < -1
        mask2 = x < 0
        mask3 = x < 1
        out1 = (-1) * mask1.type(torch.float32) + (x * x + 2 * x) * (1 - mask1.type(torch.float32))
        out2 = out1 * mask2.type(torch.float32) + (-x * x + 2 * x) * (1 - mask2.type(torch.float32))
        out3 = out2 * mask3.type(torch.float32) + 1 * (1 - mask3.type(torch.float32))
        return out_forward.detach() - out3.detach() + out3


class HardBinaryConv(nn.Module):
    def __init__(self, in_chn, out_chn, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.shape = (out_chn, in_chn, kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.randn(in_chn * out_chn * kernel_size**2, 1) * 0.01)

    def forward(self, x):
        real_weights = self.weight.view(self.shape)
        scaling_factor = torch.mean(
            torch.mean(torch.mean(abs(real_weights), dim=3, keepdim=True), dim=2, keepdim=True),
            dim=1,
            keepdim=True,
        ).detach()
        binary_weights_no_grad = scaling_factor * torch.sign(real_weights)
        cliped_weights = torch.clamp(real_weights, -1.0, 1.0)
        binary_weights = binary_weights_no_grad.detach() - cliped_weights.detach() + cliped_weights
        return F.conv2d(x, binary_weights, stride=self.stride, padding=self.padding)


class BiRealBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.binary_activation = BinaryActivation()
        self.binary_conv = HardBinaryConv(inplanes, planes, stride=stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.prelu = nn.PReLU(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2),
                nn.Conv2d(inplanes, planes, 1, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        residual = x
        out = self.bn1(self.binary_conv(self.binary_activation(x)))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.prelu(out)


class Convalg(nn.Module):
    def __init__(self, inplanes, width):
        super().__init__()
        self.conv = nn.Conv2d(inplanes, inplanes, 1, groups=inplanes, bias=False)
        self.bn = nn.BatchNorm2d(inplanes)
        self.width = width
        self.prelu = nn.PReLU(width)

    def forward(self, x):
        out = torch.cat([self.bn(self.conv(x)), x], 1)
        return self.prelu(out[:, : self.width])


class AuthorsStyleNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.alg = Convalg(16, 24)
        self.layers = nn.Sequential(
            BiRealBlock(24, 24), BiRealBlock(24, 48, 2), BiRealBlock(48, 48), BiRealBlock(48, 72, 2)
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(72, num_classes)

    def forward(self, x):
        x = self.alg(self.bn1(self.conv1(x)))
        x = self.avgpool(self.layers(x))
        return self.fc(x.view(x.size(0), -1))


class PlainSignNet(nn.Module):
    """``sign`` with ``x + (sign(x) - x).detach()``; weights ``sign(W)`` without a scale."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.Hardtanh())
        widths = [(32, 64), (64, 64), (64, 96)]
        self.w = nn.ParameterList(nn.Parameter(torch.randn(o, i, 3, 3)) for i, o in widths)
        self.bns = nn.ModuleList(nn.BatchNorm2d(o) for _, o in widths)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(96, num_classes)

    @staticmethod
    def ste(x):
        return x + (torch.sign(x) - x).detach()

    def forward(self, x):
        x = self.stem(x)
        for i, (w, bn) in enumerate(zip(self.w, self.bns, strict=True)):
            x = F.hardtanh(bn(F.conv2d(self.ste(x), self.ste(w), padding=1)))
            if i < 2:
                x = self.pool(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SignFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1)


class Shift(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(1, c, 1, 1) * 0.2)

    def forward(self, x):
        return x + self.bias.expand_as(x)


class FnBinaryConv(nn.Conv2d):
    def forward(self, x):
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True).detach()
        return F.conv2d(
            SignFn.apply(x), alpha * SignFn.apply(self.weight), None, self.stride, self.padding
        )


class ReActBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.move = Shift(cin)
        self.conv = FnBinaryConv(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )
        self.rprelu = nn.Sequential(Shift(cout), nn.PReLU(cout), Shift(cout))

    def forward(self, x):
        return self.rprelu(self.bn(self.conv(self.move(x))) + self.shortcut(x))


class FunctionSignNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(32)
        self.act = nn.PReLU(32)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.blocks = nn.Sequential(
            ReActBlock(32, 32, 1), ReActBlock(32, 64, 2), ReActBlock(64, 64, 1)
        )
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.blocks(self.pool(self.act(self.bn(self.conv(x)))))
        return self.fc(x.mean(dim=(2, 3)))


FOREIGN_MODELS = {
    "authors_style": AuthorsStyleNet,
    "plain_sign": PlainSignNet,
    "autograd_function": FunctionSignNet,
}
