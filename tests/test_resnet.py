"""ResNet-18: torchvision state_dict layout, pretrained loading, freezing and frozen BatchNorm."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lightning_dl.models.resnet import ResNet18

FIXTURE = Path(__file__).parent / "fixtures" / "resnet18_torchvision_state_dict.json"
SHAPE = (3, 64, 64)  # small images keep the tests fast; the layout does not depend on it


def torchvision_keys() -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(s)) for k, s in json.loads(FIXTURE.read_text())["keys"]]


def random_torchvision_file(path: Path, drop_num_batches_tracked: bool = False) -> dict:
    """A torchvision-format resnet18 file (1000 classes) with random weights and BN statistics."""
    torch.manual_seed(0)
    sd = ResNet18((3, 224, 224), 1000).state_dict()
    for k, v in sd.items():
        if k.endswith(("running_mean", "bias")):
            v.copy_(torch.randn_like(v) * 0.1)
        elif k.endswith(("running_var", "bn1.weight", "bn2.weight", "downsample.1.weight")):
            v.copy_(torch.rand_like(v) + 0.5)
    if drop_num_batches_tracked:
        sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, path)
    return sd


def reference_forward(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """torchvision's resnet18 in eval mode, written with functional ops over a state_dict."""

    def bn(t, p):
        return F.batch_norm(
            t,
            sd[p + ".running_mean"],
            sd[p + ".running_var"],
            sd[p + ".weight"],
            sd[p + ".bias"],
            training=False,
            eps=1e-5,
        )

    x = F.relu(bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for layer in range(1, 5):
        for block in range(2):
            p = f"layer{layer}.{block}"
            stride = 2 if layer > 1 and block == 0 else 1
            out = F.relu(
                bn(F.conv2d(x, sd[p + ".conv1.weight"], stride=stride, padding=1), p + ".bn1")
            )
            out = bn(F.conv2d(out, sd[p + ".conv2.weight"], padding=1), p + ".bn2")
            if p + ".downsample.0.weight" in sd:
                x = bn(
                    F.conv2d(x, sd[p + ".downsample.0.weight"], stride=stride), p + ".downsample.1"
                )
            x = F.relu(out + x)
    return F.linear(x.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])


def test_fixture_is_torchvision_resnet18():
    assert len(torchvision_keys()) == 122


def test_state_dict_keys_and_shapes_match_torchvision():
    sd = ResNet18((3, 224, 224), 1000).state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == torchvision_keys()


def test_cifar_stem_and_head_differ_only_where_expected():
    sd = ResNet18((3, 32, 32), 10, stem="cifar").state_dict()
    tv = dict(torchvision_keys())
    assert list(sd) == list(tv)
    differ = {k: tuple(v.shape) for k, v in sd.items() if tuple(v.shape) != tv[k]}
    assert differ == {"conv1.weight": (64, 3, 3, 3), "fc.weight": (10, 512), "fc.bias": (10,)}
    assert ResNet18((3, 32, 32), 10, stem="cifar")(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_computes_torchvision_function(tmp_path):
    sd = random_torchvision_file(tmp_path / "tv.pth")
    model = ResNet18((3, 224, 224), 1000)
    model.load_state_dict(sd, strict=True)
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference_forward(sd, x))


def test_state_dict_round_trip_strict(tmp_path):
    a = ResNet18(SHAPE, 10)
    torch.save(a.state_dict(), tmp_path / "a.pth")
    b = ResNet18(SHAPE, 10)
    b.load_state_dict(torch.load(tmp_path / "a.pth", weights_only=True), strict=True)
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize("drop_nbt", [False, True])
def test_weights_load_body_and_replace_head(tmp_path, drop_nbt):
    sd = random_torchvision_file(tmp_path / "tv.pth", drop_num_batches_tracked=drop_nbt)
    model = ResNet18(SHAPE, 10, weights=str(tmp_path / "tv.pth")).eval()
    assert model.fc.weight.shape == (10, 512)
    mine = model.state_dict()
    for k, v in sd.items():
        if not k.startswith("fc."):
            assert torch.equal(mine[k], v), k
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        new_head = {"fc.weight": model.fc.weight, "fc.bias": model.fc.bias}
        expected = reference_forward({**sd, **new_head}, x)
        torch.testing.assert_close(model(x), expected)


def test_resize_happens_inside_forward(tmp_path):
    sd = random_torchvision_file(tmp_path / "tv.pth")
    model = ResNet18((3, 32, 32), 1000, resize=96)
    model.load_state_dict(sd)
    x = torch.randn(2, 3, 32, 32)
    big = F.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference_forward(sd, big))


def test_imagenet_weights_into_cifar_stem_skip_conv1(tmp_path):
    sd = random_torchvision_file(tmp_path / "tv.pth")
    with pytest.warns(UserWarning, match=r"conv1.weight keeps its random init"):
        model = ResNet18((3, 32, 32), 10, stem="cifar", weights=str(tmp_path / "tv.pth"))
    assert model.conv1.weight.shape == (64, 3, 3, 3)
    assert torch.equal(model.layer3[1].conv2.weight, sd["layer3.1.conv2.weight"])
    assert torch.equal(model.bn1.running_var, sd["bn1.running_var"])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        ResNet18(SHAPE, 10, weights=str(tmp_path / "nope.pth"))


def test_not_a_state_dict_file(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pth: not a readable"):
        ResNet18(SHAPE, 10, weights=str(tmp_path / "junk.pth"))


def test_wrong_keys_and_shapes_are_listed(tmp_path):
    sd = random_torchvision_file(tmp_path / "tv.pth")
    del sd["layer2.0.downsample.0.weight"]
    sd["layer5.0.conv1.weight"] = torch.zeros(1)
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(ValueError) as err:
        ResNet18(SHAPE, 10, weights=str(tmp_path / "bad.pth"))
    msg = str(err.value)
    assert "bad.pth" in msg
    assert "missing 1: layer2.0.downsample.0.weight" in msg
    assert "unexpected 1: layer5.0.conv1.weight" in msg
    assert "layer1.0.conv1.weight: file (64, 64, 1, 1), model (64, 64, 3, 3)" in msg


def test_many_mismatches_list_only_the_first(tmp_path):
    good = random_torchvision_file(tmp_path / "a")
    sd = {k.replace("layer", "stage"): v for k, v in good.items()}
    torch.save(sd, tmp_path / "renamed.pth")
    expected = r"(?s)file has 122\).*missing 114: layer1.0.conv1.weight, .*\(\+109 more\)"
    with pytest.raises(ValueError, match=expected):
        ResNet18(SHAPE, 10, weights=str(tmp_path / "renamed.pth"))


@pytest.mark.parametrize("n", [2, 12, 30])
def test_trainable_last_n(n):
    model = ResNet18(SHAPE, 10, trainable_last_n=n)
    flags = [p.requires_grad for p in model.parameters()]
    assert sum(flags) == n and all(flags[-n:]) and not any(flags[:-n])
    groups = model.parameter_groups()
    assert sum(len(g["params"]) for g in groups) == n


def test_trainable_by_module_name():
    model = ResNet18(SHAPE, 10, trainable=["layer4", "fc"])
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == {n for n, _ in model.named_parameters() if n.startswith(("layer4.", "fc."))}
    assert len(names) == 17  # layer4: 2 blocks x 6 + downsample conv/BN 3, fc: 2
    with pytest.raises(ValueError, match=r"unknown module name\(s\) \['layer9'\]"):
        ResNet18(SHAPE, 10, trainable=["layer9"])


def test_bad_freezing_options():
    with pytest.raises(ValueError, match="not both"):
        ResNet18(SHAPE, 10, trainable_last_n=2, trainable=["fc"])
    with pytest.raises(ValueError, match=r"trainable_last_n must be in \[0, 62\]"):
        ResNet18(SHAPE, 10, trainable_last_n=63)


def test_parameter_groups_lower_body_lr():
    model = ResNet18(SHAPE, 10, trainable=["layer4", "fc"], body_lr_scale=0.1)
    body, head = model.parameter_groups()
    assert (body["name"], body["lr_scale"], head["name"], head["lr_scale"]) == (
        "body", 0.1, "head", 1.0
    )  # fmt: skip
    assert len(body["params"]) == 15 and len(head["params"]) == 2


def test_training_leaves_frozen_params_and_bn_stats_untouched():
    torch.manual_seed(0)
    model = ResNet18(SHAPE, 10, trainable_last_n=12).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.SGD(model.parameter_groups(), lr=0.1)
    model.eval().train()  # a Lightning-style mode round trip must keep frozen BN in eval
    for _ in range(3):
        x, y = torch.randn(8, *SHAPE), torch.randint(0, 10, (8,))
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    bns = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    # a BN counts as frozen when none of its parameters trains (N=12 splits layer4.0.bn2)
    frozen_bn = [n for n, m in bns.items() if not any(p.requires_grad for p in m.parameters())]
    live_bn = [n for n in bns if n not in frozen_bn]
    assert frozen_bn and live_bn and model.training
    for n in frozen:
        assert torch.equal(after[n], before[n]), n
    for n in frozen_bn:
        assert not model.get_submodule(n).training
        for buf in ("running_mean", "running_var", "num_batches_tracked"):
            assert torch.equal(after[f"{n}.{buf}"], before[f"{n}.{buf}"]), f"{n}.{buf}"
    for n in live_bn:  # trainable BN keeps learning its statistics
        assert after[f"{n}.num_batches_tracked"] == before[f"{n}.num_batches_tracked"] + 3
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(not torch.equal(after[n], before[n]) for n in trained)
