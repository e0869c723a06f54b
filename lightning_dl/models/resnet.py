"""ResNet-18 whose state_dict is exactly torchvision's ``resnet18`` (122 entries: keys and shapes).

Written here because torchvision is not a dependency; matching its layout means torchvision's
ImageNet file loads with ``strict=True`` and computes the same function. On top of the plain
network: optional pretrained weights with a fresh head, a CIFAR stem, batched resizing, and the
seeds' freezing policy (frozen BatchNorm stays in eval so its running statistics are untouched).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lightning_dl.models.torchvision_weights import load_torchvision_state_dict

HEAD = "fc"


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; a 1x1 stride-s projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def make_layer(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1))


class ResNet18(nn.Module):
    """torchvision-compatible ResNet-18 backbone with pretrained loading and freezing options.

    stem="imagenet": conv 7x7/2 + maxpool 3x3/2 (torchvision). stem="cifar": conv 3x3/1, no maxpool
    (keeps 32x32 inputs from collapsing to 1x1 by layer4); its conv1.weight is (64, C, 3, 3), so
    ImageNet weights load into it with conv1.weight skipped (left at random init, with a warning).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        weights: str | None = None,
        stem: Literal["imagenet", "cifar"] = "imagenet",
        resize: int | None = None,
        trainable_last_n: int | None = None,
        trainable: Sequence[str] | None = None,
        body_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"ResNet18 expects input_shape (C, H, W), got {tuple(input_shape)}")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if trainable_last_n is not None and trainable is not None:
            raise ValueError("give either trainable_last_n or trainable, not both")
        if body_lr_scale <= 0:
            raise ValueError(f"body_lr_scale must be > 0, got {body_lr_scale}")
        self.stem, self.resize, self.body_lr_scale = stem, resize, body_lr_scale

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(input_shape[0], 64, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(input_shape[0], 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        self.layer1 = make_layer(64, 64, 1)
        self.layer2 = make_layer(64, 128, 2)
        self.layer3 = make_layer(128, 256, 2)
        self.layer4 = make_layer(256, 512, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        self._init_weights()

        if weights is not None:
            self._load_pretrained(weights, num_classes)
        if trainable_last_n is not None:
            self.set_trainable_last_n(trainable_last_n)
        elif trainable is not None:
            self.set_trainable(trainable)

    def _init_weights(self) -> None:
        """torchvision's init: Kaiming-normal (fan_out) convs, BN scale 1 / shift 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize is not None and tuple(x.shape[-2:]) != (self.resize, self.resize):
            x = F.interpolate(
                x, size=(self.resize, self.resize), mode="bilinear", align_corners=False
            )
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))

    # --- pretrained weights -------------------------------------------------------------------
    def _load_pretrained(self, path: str, num_classes: int) -> None:
        """Strict load of a torchvision resnet18 file, then a fresh ``num_classes`` head."""
        skip = ("conv1.weight",) if self.stem == "cifar" else ()
        state = load_torchvision_state_dict(path, self.state_dict(), skip=skip, head=HEAD)
        if skip and state["conv1.weight"].shape != self.conv1.weight.shape:
            warnings.warn(
                f"{path}: stem='cifar' has conv1.weight {tuple(self.conv1.weight.shape)}, the file "
                f"has {tuple(state['conv1.weight'].shape)}; conv1.weight keeps its random "
                "init, every other tensor is loaded",
                stacklevel=3,
            )
            state["conv1.weight"] = self.conv1.weight.detach().clone()
        self.fc = nn.Linear(512, state[f"{HEAD}.weight"].shape[0])  # the file's head, e.g. 1000
        self.load_state_dict(state, strict=True)
        self.fc = nn.Linear(512, num_classes)  # new head; same registration position as before

    # --- freezing -----------------------------------------------------------------------------
    def set_trainable_last_n(self, n: int) -> None:
        """Train only the last ``n`` parameter tensors in registration order (the seeds' policy)."""
        params = list(self.parameters())
        if not 0 <= n <= len(params):
            raise ValueError(f"trainable_last_n must be in [0, {len(params)}], got {n}")
        for i, p in enumerate(params):
            p.requires_grad_(i >= len(params) - n)
        self.train(self.training)

    def set_trainable(self, module_names: Sequence[str]) -> None:
        """Train only the parameters under the named modules, e.g. ``["layer4", "fc"]``."""
        known = {name for name, _ in self.named_modules() if name}
        unknown = [m for m in module_names if m not in known]
        if unknown:
            top = [name for name, _ in self.named_children()]
            raise ValueError(f"unknown module name(s) {unknown} in trainable; top-level: {top}")
        for name, p in self.named_parameters():
            p.requires_grad_(any(name.startswith(m + ".") for m in module_names))
        self.train(self.training)

    def train(self, mode: bool = True) -> ResNet18:
        """Frozen BatchNorm (no trainable parameter) stays in eval: running stats stay put."""
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d) and not any(p.requires_grad for p in m.parameters()):
                m.eval()
        return self

    def parameter_groups(self) -> list[dict]:
        """Trainable parameters only: the body at ``body_lr_scale`` times the optimizer's lr."""
        trainable = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        body = [p for n, p in trainable if not n.startswith(f"{HEAD}.")]
        head = [p for n, p in trainable if n.startswith(f"{HEAD}.")]
        groups = [
            {"name": "body", "params": body, "lr_scale": self.body_lr_scale},
            {"name": "head", "params": head, "lr_scale": 1.0},
        ]
        return [g for g in groups if g["params"]]
