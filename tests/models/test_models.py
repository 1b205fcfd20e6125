import pytest
import torch

from fercore.classes import EMOTIONS
from models import build_model, list_models
from models.resnet import load_imagenet_state_dict
from torchvision.models import resnet18 as tv_resnet18


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_emotions_in_fer2013_order():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_registry_lists_both_families_and_rejects_unknown():
    assert {"cnn", "resnet18"} <= set(list_models())
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg")


def test_seed_cnn_shape_and_parameter_count():
    m = build_model("cnn").eval()
    assert n_params(m) == 7_180_615  # the seed: ~7.18 M
    assert m(torch.zeros(3, 1, 48, 48)).shape == (3, 7)
    convs = [l for l in m.features.modules() if isinstance(l, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    linears = [l for l in m.classifier if isinstance(l, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(4608, 512), (512, 256), (256, 7)]
    assert m.preprocessing.size == 48 and m.arch == "cnn" and m.arch_args == {}


def test_cnn_width_multiplier_makes_cheaper_variants():
    half = build_model("cnn", width=0.5)
    assert n_params(half) < n_params(build_model("cnn")) / 3
    assert half.eval()(torch.zeros(2, 1, 48, 48)).shape == (2, 7)


def test_cnn_has_no_pretrained_weights():
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_model("cnn", pretrained=True)


@pytest.mark.parametrize("args", [{"stem": "small"}, {"stem": "imagenet", "input_size": 96}])
def test_resnet18_variants_take_48x48_grayscale(args):
    m = build_model("resnet18", **args).eval()
    assert m.net.conv1.in_channels == 1
    assert m(torch.zeros(2, 1, 48, 48)).shape == (2, 7)


def test_resnet18_loads_imagenet_weights_from_local_file_and_folds_conv1(tmp_path):
    reference = tv_resnet18(weights=None)  # stands in for the ImageNet file: same keys and shapes
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(reference.state_dict(), path)
    m = build_model("resnet18", weights_path=str(path))
    assert torch.equal(m.net.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    assert torch.allclose(m.net.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    # A gray image replicated to RGB gives the same first-layer output as the folded 1-channel conv.
    x = torch.rand(1, 1, 48, 48)
    assert torch.allclose(m.net.conv1(x), reference.conv1(x.repeat(1, 3, 1, 1)), atol=1e-5)


def test_resnet18_without_weights_explains_both_fixes(tmp_path, monkeypatch):
    import models.resnet as resnet

    class Offline:  # torchvision's weights entry on a machine without the internet or a cached file
        url = resnet.imagenet_weights().url

        def get_state_dict(self, **kwargs):
            raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(resnet, "imagenet_weights", Offline)
    with pytest.raises(RuntimeError) as err:
        load_imagenet_state_dict(None)
    text = str(err.value)
    assert "hub" in text and "model.weights_path" in text and "pretrained=false" in text
    with pytest.raises(FileNotFoundError, match="not found"):
        load_imagenet_state_dict(str(tmp_path / "missing.pth"))
