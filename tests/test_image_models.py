"""Image models as plain modules: TiTok and the VQ2D baseline at tiny sizes, on CPU."""
import pytest
import torch
import torch.nn.functional as F
from skimage import data
from torch import nn

from tokzoo.config import ConfigError, from_dict
from tokzoo.image.discriminator import PatchDiscriminator
from tokzoo.image.config import TiTokModelConfig, VQ2DModelConfig
from tokzoo.image.titok import TiTokModel
from tokzoo.image.vq2d import VQ2DModel

K = 16


def titok(perceptual=None, **overrides):
    config = dict(size="tiny", image_size=32, patch_size=8, num_tokens=K, codebook_size=64, discriminator=False)
    return TiTokModel(TiTokModelConfig(**{**config, **overrides}), perceptual=perceptual)


def vq2d(**overrides):
    config = dict(image_size=32, channels=32, channel_mult=[1, 2, 2], num_res_blocks=1, latent_dim=64,
                  codebook_size=64, discriminator=False)
    return VQ2DModel(VQ2DModelConfig(**{**config, **overrides}))


MODELS = {"titok": titok, "vq2d": vq2d}


class StandInPerceptual(nn.Module):
    """A fixed random conv feature distance with BatchNorm, standing in for the EfficientNet loss."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())

    def forward(self, pred, target):
        return F.mse_loss(self.features(pred), self.features(target))


@pytest.fixture(scope="module")
def photos():
    """Two real photographs (astronaut, coffee), area-resized to 32 x 32, in [0, 1]."""
    images = [torch.from_numpy(f()).permute(2, 0, 1)[None].float() / 255 for f in (data.astronaut, data.coffee)]
    return torch.cat([F.interpolate(x, size=(32, 32), mode="area") for x in images])


@pytest.mark.parametrize("quantizer", ["vq", "fsq"])
@pytest.mark.parametrize("name", MODELS)
def test_losses_contract(name, quantizer):
    torch.manual_seed(0)
    model = MODELS[name](quantizer=quantizer, fsq_levels=[8, 5, 5, 5], discriminator=True)
    images = torch.rand(3, 3, 32, 32)
    out = model.losses(images, step=0)
    assert out["recon"].shape == images.shape and out["recon"].requires_grad
    assert 0 <= out["recon"].min() and out["recon"].max() <= 1
    assert out["loss"].ndim == 0 and out["loss"].requires_grad
    for key in ("l2", "quantizer", "usage", "perplexity"):
        assert out[key].ndim == 0 and not out[key].requires_grad, key
    assert "perceptual" not in out  # none was given
    torch.testing.assert_close(out["loss"].detach(), out["l2"] + out["quantizer"])
    logits = model.discriminator(out["recon"])
    assert logits.shape[0] == 3 and logits.ndim == 4


@pytest.mark.parametrize("name", MODELS)
def test_encode_decode_round_trip_shapes(name):
    model = MODELS[name]().eval()
    images = torch.rand(2, 3, 32, 32)
    codes = model.encode(images)
    expected = K if name == "titok" else 8 * 8  # 32 / 2^2 = 8: an 8 x 8 grid
    assert codes.shape == (2, expected) and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < 64
    recon = model.decode(codes)
    assert recon.shape == images.shape and 0 <= recon.min() and recon.max() <= 1
    with pytest.raises(ValueError):
        model.decode(torch.full_like(codes, 64))
    with pytest.raises(ValueError):
        model.decode(torch.full_like(codes, -1))


def test_titok_prefixes():
    torch.manual_seed(0)
    model = titok().eval()
    images = torch.rand(2, 3, 32, 32)
    codes = model.encode(images)
    torch.testing.assert_close(model.encode(images, num_tokens=5), codes[:, :5])
    recons = {k: model.decode(codes[:, :k]) for k in range(1, K + 1)}
    for k, recon in recons.items():
        assert recon.shape == images.shape, k
    assert not torch.allclose(recons[1], recons[K])  # the tail tokens change the image
    # a prefix decodes exactly as training's token drop sees the full sequence with its tail dropped
    tokens = model.quantizer.decode_codes(codes)
    with torch.no_grad():
        dropped = model.decoder(tokens, torch.tensor([4, 4])).clamp(0, 1)
    torch.testing.assert_close(recons[4], dropped)
    for bad in (0, K + 1):
        with pytest.raises(ValueError):
            model.decode(torch.zeros(2, bad, dtype=torch.long))
        with pytest.raises(ValueError):
            model.encode(images, num_tokens=bad)
    with pytest.raises(ValueError):
        model.decode(torch.zeros(2, 3, 4, dtype=torch.long))


def test_vq2d_rejects_wrong_length():
    model = vq2d().eval()
    with pytest.raises(ValueError):
        model.decode(torch.zeros(2, 63, dtype=torch.long))


@pytest.mark.parametrize("mode", ["uniform", "pow2"])
def test_token_drop_only_in_training(mode):
    torch.manual_seed(0)
    model = titok(token_drop=mode)
    keep = model.keep_lengths(256, "cpu")
    assert keep.min() >= 1 and keep.max() <= K
    if mode == "uniform":
        assert len(keep.unique()) > K // 2
    else:
        assert set(keep.tolist()) == {1, 2, 4, 8, 16}
    out = model.losses(torch.rand(8, 3, 32, 32), step=0)
    assert out["tokens_kept"] < 1
    model.eval()
    assert (model.keep_lengths(256, "cpu") == K).all()
    assert model.losses(torch.rand(8, 3, 32, 32), step=0)["tokens_kept"] == 1
    assert (titok(token_drop="none").keep_lengths(64, "cpu") == K).all()  # training, but no drop


@pytest.mark.parametrize("name", MODELS)
def test_gradient_reaches_encoder_through_straight_through(name):
    torch.manual_seed(0)
    model = MODELS[name](quantizer_weight=0.0)  # only the reconstruction can reach the encoder
    model.losses(torch.rand(2, 3, 32, 32), step=0)["loss"].backward()
    first = next(model.encoder.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_perceptual_is_weighted_frozen_and_outside_the_state_dict():
    torch.manual_seed(0)
    perceptual = StandInPerceptual()
    model = titok(perceptual=perceptual)
    out = model.train().losses(torch.rand(2, 3, 32, 32), step=0)
    torch.testing.assert_close(out["loss"].detach(), out["l2"] + 1.1 * out["perceptual"] + out["quantizer"])
    assert not perceptual.training and not any(p.requires_grad for p in perceptual.parameters())
    assert not any(k.startswith("perceptual") or "features" in k for k in model.state_dict())
    assert all(p is not q for p in model.parameters() for q in perceptual.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_training_reduces_l2_on_real_photos(name, photos):
    torch.manual_seed(0)
    model = MODELS[name]()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for step in range(30):
        out = model.losses(photos, step)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        history.append(out["l2"].item())
    # predicting each photo's mean colour: what a model without spatial information can do
    mean_colour = F.mse_loss(photos, photos.mean((2, 3), keepdim=True).expand_as(photos)).item()
    print(f"{name}: l2 {history[0]:.4f} -> {history[-1]:.4f} (mean colour {mean_colour:.4f})")
    assert history[-1] < 0.5 * history[0]
    assert history[-1] < 0.7 * mean_colour


@pytest.mark.parametrize("size, num_tokens, reference", [("S", 128, 84e6), ("B", 64, 205e6), ("L", 32, 641e6)])
def test_titok_parameter_counts(size, num_tokens, reference):
    """TiTok's reported totals include a 31M MaskGIT pixel decoder that the single-stage model has not."""
    with torch.device("meta"):
        model = TiTokModel(TiTokModelConfig(size=size, num_tokens=num_tokens, discriminator=False))
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - (reference - 31e6)) < 0.05 * reference, count


def test_discriminator_is_light_and_patchwise():
    disc = PatchDiscriminator()
    assert sum(p.numel() for p in disc.parameters()) < 1e6
    assert disc(torch.rand(2, 3, 256, 256)).shape == (2, 1, 31, 31)
    assert disc(torch.rand(2, 3, 32, 32)).shape == (2, 1, 3, 3)


@pytest.mark.parametrize("cls, data, key", [
    (TiTokModelConfig, {"image_size": 250, "patch_size": 16}, "image_size"),
    (TiTokModelConfig, {"num_tokens": 0}, "num_tokens"),
    (TiTokModelConfig, {"size": "XL"}, "size"),
    (TiTokModelConfig, {"token_drop": "random"}, "token_drop"),
    (TiTokModelConfig, {"fsq_levels": [8, 1]}, "fsq_levels"),
    (VQ2DModelConfig, {"image_size": 40}, "image_size"),  # f16 needs a multiple of 16
    (VQ2DModelConfig, {"channel_mult": []}, "channel_mult"),
])
def test_config_errors_name_the_key(cls, data, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        from_dict(cls, data)


def test_config_from_plain_data():
    config = from_dict(TiTokModelConfig, {"size": "B", "num_tokens": 64, "quantizer": "fsq",
                                          "fsq_levels": [8, 8, 8, 5, 5, 5], "token_drop": "pow2"})
    assert (config.size, config.num_tokens, config.patch_size) == ("B", 64, 16)
    assert from_dict(VQ2DModelConfig, {"channel_mult": [1, 2]}).channel_mult == [1, 2]
