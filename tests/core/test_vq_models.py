"""Tests for the image generator's networks (`core.vq.quantize`, `codebook`, `vqig`, `losses`,
`config`, `weights`): the quantizer's straight-through gradient, index decoding, every VQIG module's
shapes at the tiny preset, the presets' sizes, the perceptual loss's weights handling, strict weights."""

import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.vq.codebook import CodebookAE
from core.vq.config import PRESETS, VQConfig, VQConfigError, resolve_preset
from core.vq.losses import (
    VGG19_LAYERS, PatchDiscriminator, PerceptualLoss, PerceptualOffWarning, PerceptualWeightsError,
    code_accuracy, code_cross_entropy, discriminator_adversarial, generator_adversarial,
)
from core.vq.quantize import VectorQuantizer
from core.vq.vqig import (
    VQIG, AdaIN, CodeTransformer, CrossAttention, FuseNet, MappingNet, WarpNet, coefficient_windows, warp_image,
)
from core.vq.weights import VQWeightsError, load_codebook, load_vqig, save_codebook, save_vqig

TINY = PRESETS["tiny"]
S, M, N, DIM = TINY.codebook.resolution, TINY.codebook.latent_size, TINY.codebook.codebook_size, TINY.codebook.code_dim
W = TINY.vqig.window


def images(batch: int, seed: int = 0, size: int = S) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def vqig(face) -> VQIG:
    torch.manual_seed(0)
    return VQIG(TINY, face.n_expressions).eval()


def test_quantizer_picks_the_nearest_code_and_passes_the_gradient_straight_through():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(16, 4)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    result = quantizer(z)
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    brute = torch.cdist(flat, quantizer.embedding.weight).argmin(1).view(2, 3, 3)
    assert torch.equal(result.indices, brute)
    assert torch.allclose(result.quantized, quantizer.lookup(brute))
    upstream = torch.randn_like(z)
    (result.quantized * upstream).sum().backward()
    assert torch.allclose(z.grad, upstream)  # identity Jacobian: straight through
    assert quantizer.embedding.weight.grad is None  # codes learn from the code loss only


def test_quantizer_losses_move_codes_by_code_and_encoder_by_feat():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(8, 4)
    z = torch.randn(1, 4, 2, 2, requires_grad=True)
    losses = quantizer(z).losses
    assert torch.allclose(losses.code, losses.feat)  # same value, different gradients
    losses.code.backward(retain_graph=True)
    assert z.grad is None and quantizer.embedding.weight.grad.abs().sum() > 0
    losses.feat.backward()
    assert z.grad.abs().sum() > 0


def test_init_codes_takes_distinct_latent_vectors():
    quantizer = VectorQuantizer(8, 4)
    z = torch.randn(2, 4, 3, 3)
    quantizer.init_codes(z, torch.Generator().manual_seed(0))
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    matches = (quantizer.embedding.weight[:, None] == flat[None]).all(-1)  # (8, 18)
    assert matches.any(1).all() and len(torch.unique(matches.float().argmax(1))) == 8


def test_decoding_the_indices_reproduces_the_quantized_decode():
    torch.manual_seed(0)
    model = CodebookAE(TINY.codebook).eval()
    x = images(2)
    with torch.no_grad():
        encoded = model.encode(x)
        assert encoded.quantized.shape == (2, DIM, M, M) and encoded.indices.shape == (2, M, M)
        assert torch.equal(model.decode_indices(encoded.indices), model.decode(encoded.quantized))
        recon, _ = model(x)
    assert recon.shape == x.shape and recon.abs().max() <= 1


def test_vqig_modules_have_the_documented_shapes(vqig, face):
    torch.manual_seed(0)
    batch, coeffs = 2, face.n_expressions + 6
    sigma = MappingNet(coeffs, 8, 2, 16)(torch.randn(batch, W, coeffs))
    assert sigma.shape == (batch, 16)
    assert AdaIN(5, 16)(torch.randn(batch, 5, 4, 4), sigma).shape == (batch, 5, 4, 4)
    flow = WarpNet(4, 2, 16)(images(batch), sigma)
    assert flow.shape == (batch, 2, S, S)
    z = torch.randn(batch, DIM, M, M)
    assert FuseNet(DIM)(z, z).shape == (batch, DIM, M, M)
    assert CrossAttention(DIM, 2)(z, z).shape == (batch, DIM, M, M)
    assert CodeTransformer(DIM, M * M, 16, 2, 1, N)(z).shape == (batch, M * M, N)
    with torch.no_grad():
        out = vqig(images(batch), torch.rand(batch, W, face.n_expressions), torch.zeros(batch, W, 6))
    assert out.logits.shape == (batch, M * M, N)
    assert out.features.shape == (batch, DIM, M, M)
    assert out.warped.shape == out.image.shape == (batch, 3, S, S)
    assert vqig.predict_indices(out.logits).shape == (batch, M, M)
    source, exp, pose = images(batch), torch.rand(batch, W, face.n_expressions), torch.zeros(batch, W, 6)
    with torch.no_grad():
        own = vqig(source, exp, pose)
        given = vqig(source, exp, pose, identity=vqig.identity(source))
        other = vqig(source, exp, pose, identity=vqig.identity(images(batch, seed=5)))
    assert torch.equal(vqig.identity(source), vqig.codebook.encode(source).quantized)
    assert torch.equal(given.logits, own.logits)
    assert not torch.allclose(other.logits, own.logits)  # a given identity replaces the source's


def test_untrained_warp_is_the_identity_and_a_shift_moves_the_image():
    x = images(1)
    assert torch.allclose(WarpNet(4, 2, 8)(x, torch.randn(1, 8)), torch.zeros(1, 2, S, S))
    assert torch.allclose(warp_image(x, torch.zeros(1, 2, S, S)), x, atol=1e-5)
    one_pixel = torch.zeros(1, 2, S, S)
    one_pixel[:, 0] = 2 / S  # sample one pixel to the right
    assert torch.allclose(warp_image(x, one_pixel)[..., :-1], x[..., 1:], atol=1e-5)


def test_warped_encoder_starts_as_the_codebook_encoder(vqig, face):
    torch.manual_seed(1)
    book = CodebookAE(TINY.codebook)
    model = VQIG(TINY, face.n_expressions)
    model.init_from_codebook(book)
    for (name, ours), theirs in zip(model.warped_encoder.state_dict().items(), book.encoder.state_dict().values()):
        assert torch.equal(ours, theirs), name
    assert not any(p.requires_grad for p in model.codebook.parameters())


def test_image_losses_reach_the_code_logits_through_the_lookup(face):
    torch.manual_seed(0)
    model = VQIG(TINY, face.n_expressions)
    out = model(images(1), torch.rand(1, W, face.n_expressions), torch.zeros(1, W, 6))
    out.image.mean().backward()
    assert model.transformer.head[1].weight.grad.abs().sum() > 0


def test_coefficient_windows_are_centred_with_repeated_edges():
    values = np.arange(5, dtype=np.float32)[:, None]
    windows = coefficient_windows(values, 3)
    assert windows.shape == (5, 3, 1)
    assert windows[0, :, 0].tolist() == [0, 0, 1] and windows[4, :, 0].tolist() == [3, 4, 4]


def test_presets_build_with_a_16x16_latent_and_preview_runs_a_forward(face):
    assert PRESETS["paper-512"].codebook.latent_size == 16 and PRESETS["paper-512"].codebook.codebook_size == 1024
    assert PRESETS["paper-512"].codebook.code_dim == 256 and PRESETS["preview-256"].codebook.latent_size == 16
    torch.manual_seed(0)
    paper = VQIG(PRESETS["paper-512"], face.n_expressions)
    assert paper.transformer.head[1].out_features == 1024
    preview = VQIG(PRESETS["preview-256"], face.n_expressions).eval()
    window = PRESETS["preview-256"].vqig.window
    with torch.no_grad():
        out = preview(images(1, size=256), torch.rand(1, window, face.n_expressions), torch.zeros(1, window, 6))
    assert out.logits.shape == (1, 256, 1024) and out.image.shape == (1, 3, 256, 256)


def test_config_round_trips_and_rejects_bad_values():
    assert VQConfig.from_dict(TINY.to_dict()) == TINY
    assert resolve_preset({"preset": "tiny", "vqig": {"heads": 4}}).vqig.heads == 4
    with pytest.raises(VQConfigError, match="unknown key"):
        VQConfig.from_dict({"codebook": {"size": 3}})
    with pytest.raises(VQConfigError, match="multiple of"):
        resolve_preset({"preset": "tiny", "codebook": {"resolution": 60}})
    with pytest.raises(VQConfigError, match="window must be odd"):
        resolve_preset({"preset": "tiny", "vqig": {"window": 4}})
    with pytest.raises(VQConfigError, match="unknown image-generator preset"):
        resolve_preset({"preset": "huge"})


def test_perceptual_loss_warns_loudly_when_off():
    with pytest.warns(PerceptualOffWarning, match="OFF"):
        loss = PerceptualLoss(None)
    assert loss(images(1), images(1, seed=1)).item() == 0.0


def test_perceptual_loss_loads_torchvision_vgg19_layout(tmp_path):
    torch.manual_seed(0)
    conv_indices = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    plan = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
    state, c_in = {}, 3
    for index, c_out in zip(conv_indices, plan):
        state[f"features.{index}.weight"] = torch.randn(c_out, c_in, 3, 3) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(c_out)
        c_in = c_out
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored, as in torchvision's file
    path = tmp_path / "vgg19.safetensors"
    save_file(state, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = PerceptualLoss(path)
    assert loss.features[0].weight.shape == (64, 3, 3, 3) and len(loss.features) == VGG19_LAYERS[-1] + 1
    x = images(1, size=32)
    assert loss(x, x).item() == 0.0 and loss(x, images(1, seed=2, size=32)).item() > 0
    del state["features.28.weight"]  # conv5_1, which the loss uses
    save_file(state, path)
    with pytest.raises(PerceptualWeightsError, match="vgg19 layout"):
        PerceptualLoss(path)
    with pytest.raises(PerceptualWeightsError, match="does not exist"):
        PerceptualLoss(tmp_path / "missing.pth")


def test_adversarial_losses_prefer_real_for_the_discriminator_and_fooling_for_the_generator():
    disc = PatchDiscriminator(8, 2)
    assert disc(images(2)).shape == (2, 1, S // 4 - 2, S // 4 - 2)
    high, low = torch.full((4,), 3.0), torch.full((4,), -3.0)
    for kind in ("non-saturating", "hinge"):
        assert discriminator_adversarial(high, low, kind) < discriminator_adversarial(low, high, kind)
        assert generator_adversarial(high, kind) < generator_adversarial(low, kind)


def test_code_cross_entropy_and_accuracy():
    indices = torch.tensor([[[1, 2], [0, 1]]])  # (1, 2, 2)
    perfect = torch.nn.functional.one_hot(indices.flatten(1), 3).float() * 20  # (1, 4, 3)
    assert code_accuracy(perfect, indices) == 1.0 and code_cross_entropy(perfect, indices) < 1e-6
    assert code_accuracy(perfect.roll(1, -1), indices) == 0.0


def test_weights_round_trip_strictly_and_check_the_face_model(tmp_path, vqig, face):
    save_codebook(tmp_path / "book", vqig.codebook)
    book = load_codebook(tmp_path / "book")
    assert torch.equal(book.quantizer.embedding.weight, vqig.codebook.quantizer.embedding.weight)
    save_vqig(tmp_path / "vqig", vqig, face)
    loaded = load_vqig(tmp_path / "vqig", face)
    for (name, ours), theirs in zip(loaded.state_dict().items(), vqig.state_dict().values()):
        assert torch.equal(ours, theirs), name
    with pytest.raises(VQWeightsError, match="flowvq-vqig-weights"):
        load_vqig(tmp_path / "book", face)
    other = type(face)(**{**face.__dict__, "version": "999"})
    with pytest.raises(VQWeightsError, match="trained for face model"):
        load_vqig(tmp_path / "vqig", other)
    save_file({"only": torch.zeros(1)}, tmp_path / "vqig" / "vqig.safetensors")
    with pytest.raises(VQWeightsError, match="does not fit"):
        load_vqig(tmp_path / "vqig", face)
