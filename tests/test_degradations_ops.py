"""Degradation ops: measured effects, and agreement with AgenticIR's OpenCV/numpy formulas."""

from __future__ import annotations

import importlib.util
import math
import os

import cv2
import numpy as np
import pytest
import torch

from rar.degradations.color import hsv_to_rgb, rgb_to_hsv
from rar.degradations.filtering import filter2d
from rar.degradations.jpeg import jpeg
from rar.degradations.kernels import disk_kernel, gaussian_family_kernel, motion_kernel, sinc_kernel
from rar.degradations.noise import gaussian_noise, poisson_noise
from rar.degradations.ops import dark, defocus_blur, haze, low_resolution, motion_blur, synthetic_depth
from rar.degradations.rain import rain, rain_kernel, rain_layer
from rar.degradations.resize import imresize


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth_image(h: int = 64, w: int = 64) -> torch.Tensor:
    """A smooth colourful test image [1, 3, H, W] in [0.2, 0.8]."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * torch.sin(6 * x + 4 * y)])[None]


def _np(img: torch.Tensor) -> np.ndarray:
    return img[0].permute(1, 2, 0).double().numpy()


# ----------------------------------------------------------------------------- resize / low resolution


def _pyiqa_matlab_imresize():
    """pyiqa's MATLAB-exact bicubic (S. Son's implementation), loaded without importing all of pyiqa."""
    spec = importlib.util.find_spec("pyiqa")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pyiqa is not installed")
    path = os.path.join(spec.submodule_search_locations[0], "matlab_utils", "resize.py")
    module_spec = importlib.util.spec_from_file_location("_pyiqa_matlab_resize", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.imresize


@pytest.mark.parametrize("scale", [0.25, 4, 0.3])
def test_imresize_matches_independent_matlab_implementation(scale):
    reference = _pyiqa_matlab_imresize()
    x = torch.rand(2, 3, 36, 28, generator=_gen(), dtype=torch.float64)
    assert torch.allclose(imresize(x, scale), reference(x, scale=scale), atol=1e-6)  # pyiqa computes in float32


def test_imresize_constant_and_ramp():
    const = torch.full((2, 3, 40, 52), 0.37)
    for scale in (0.25, 4):
        assert torch.allclose(imresize(const, scale), torch.full_like(imresize(const, scale), 0.37), atol=1e-6)
    # a linear ramp downscaled x1/4 gives the mean of each 4-pixel block away from the borders
    ramp = torch.arange(64, dtype=torch.float64).view(1, 1, 1, 64).expand(1, 1, 8, 64)
    out = imresize(ramp, 0.25)[0, 0, 0]
    block_means = 4 * torch.arange(16, dtype=torch.float64) + 1.5
    assert torch.allclose(out[3:-3], block_means[3:-3], atol=1e-9)
    # and upscaled x4 a ramp stays the (interpolated) ramp in the interior
    up = imresize(torch.arange(16, dtype=torch.float64).view(1, 1, 1, 16), 4)[0, 0, 0]
    expected = (torch.arange(64, dtype=torch.float64) + 1) / 4 + 0.5 * (1 - 1 / 4) - 1
    assert torch.allclose(up[8:-8], expected[8:-8], atol=1e-9)


def test_low_resolution_is_quarter_size():
    img = torch.rand(2, 3, 64, 96, generator=_gen())
    out = low_resolution(img)
    assert out.shape == (2, 3, 16, 24)
    assert 0 <= out.min() and out.max() <= 1
    assert imresize(img, 0.25).shape == out.shape


# ----------------------------------------------------------------------------- noise


@pytest.mark.parametrize("sigma", [20.0, 50.0])
def test_gaussian_noise_std_on_flat_gray(sigma):
    img = torch.full((2, 3, 96, 96), 0.5)
    out = gaussian_noise(img, torch.tensor([sigma, sigma]), _gen())
    measured = (out - img).std().item() * 255
    assert abs(measured - sigma) < 0.05 * sigma
    # colour noise: channels are independent
    corr = torch.corrcoef(torch.stack([(out - img)[:, 0].flatten(), (out - img)[:, 1].flatten()]))[0, 1]
    assert abs(corr) < 0.05


def test_gray_gaussian_noise_is_identical_across_channels():
    img = torch.full((1, 3, 32, 32), 0.5)
    out = gaussian_noise(img, 20.0, _gen(), gray=True)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


def test_poisson_noise_follows_basicsr_model():
    # a ramp with all 256 levels makes BasicSR's level count 256; the flat half then has
    # shot-noise std sqrt(0.5 * 256) / 256 * scale
    img = torch.full((1, 3, 64, 128), 0.5)
    img[..., :64] = (torch.arange(64 * 64).view(64, 64) % 256).float() / 255
    scale = 2.0
    out = poisson_noise(img, torch.tensor([scale]), _gen())
    measured = (out - img)[..., 64:].std().item()
    expected = math.sqrt(0.5 / 256) * scale
    assert abs(measured - expected) < 0.05 * expected


# ----------------------------------------------------------------------------- jpeg


def test_jpeg_shows_8x8_blocking():
    img = _smooth_image()
    out = jpeg(img, torch.tensor([10]))
    diffs = (out[..., :, 1:] - out[..., :, :-1]).abs().mean((0, 1, 2))
    at_boundary = torch.arange(63) % 8 == 7
    assert diffs[at_boundary].mean() > 2 * diffs[~at_boundary].mean()
    assert torch.equal(out, (out * 255).round() / 255)


def test_jpeg_lower_quality_is_worse_and_rejects_bad_quality():
    img = _smooth_image()
    err = [(jpeg(img, torch.tensor([q])) - img).abs().mean().item() for q in (10, 29, 90)]
    assert err[0] > err[1] > err[2]
    with pytest.raises(ValueError, match=r"\[1, 100\]"):
        jpeg(img, torch.tensor([0]))


# ----------------------------------------------------------------------------- dark / colour


def test_rgb_hsv_round_trip_and_opencv():
    x = torch.rand(2, 3, 16, 16, generator=_gen(), dtype=torch.float64)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-12)
    im = _np(x[:1]).astype(np.float32)
    ref = cv2.cvtColor(np.ascontiguousarray(im[..., ::-1]), cv2.COLOR_BGR2HSV)  # float: H in degrees
    mine = _np(rgb_to_hsv(x[:1]))
    assert np.abs(mine[..., 0] * 360 - ref[..., 0]).max() < 1e-2
    assert np.abs(mine[..., 1:] - ref[..., 1:]).max() < 1e-5


@pytest.mark.parametrize("method,amount", [(0, 40.0), (1, 0.6), (2, 120.0)])
def test_dark_lowers_v_and_keeps_hue(method, amount):
    img = _smooth_image()
    out = dark(img, torch.tensor([method]), torch.tensor([amount]))
    v_in, v_out = rgb_to_hsv(img)[:, 2], rgb_to_hsv(out)[:, 2]
    assert v_out.mean() < v_in.mean() - 0.05
    keep = v_out > 0.05
    hue_in, hue_out = rgb_to_hsv(img)[:, 0][keep], rgb_to_hsv(out)[:, 0][keep]
    assert (hue_in - hue_out).abs().max() < 1e-4
    if method == 2:  # linear mapping: V spans exactly [0, amount/255]
        assert abs(v_out.min().item()) < 1e-6 and abs(v_out.max().item() - amount / 255) < 1e-5
    # identical to editing V in HSV space (AgenticIR's formula) and converting back
    hsv = rgb_to_hsv(img.double())
    v = hsv[:, 2:3]
    expected_v = {
        0: (v - amount / 255).clamp(0, 1),
        1: v ** (1 / amount),
        2: (v - v.min()) / (v.max() - v.min()) * amount / 255,
    }[method]
    via_hsv = hsv_to_rgb(torch.cat([hsv[:, :2], expected_v], 1))
    assert torch.allclose(out.double(), via_hsv, atol=1e-6)


def test_dark_matches_agenticir_uint8_pipeline():
    rng = np.random.default_rng(0)
    rgb = (rng.uniform(0, 1, (32, 32, 3)) * 255).round().astype(np.uint8)
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2HSV)
    h, s, v = cv2.split(hsv)
    v = (cv2.pow(v / 255.0, 1.0 / 0.6) * 255).clip(0, 255).round().astype(np.uint8)
    ref = cv2.cvtColor(cv2.merge((h, s, v)), cv2.COLOR_HSV2BGR)[..., ::-1].astype(np.float64)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    mine = (_np(dark(x, torch.tensor([1]), torch.tensor([0.6]))) * 255).round()
    assert np.abs(mine - ref).mean() < 1.0  # OpenCV quantises H and S in uint8 HSV; we do not


# ----------------------------------------------------------------------------- haze


def test_haze_formula_and_lower_contrast():
    img = _smooth_image()
    depth = torch.full((1, 1, 16, 16), 3.0)  # constant depth, quarter size: d = 1 everywhere
    out = haze(img, torch.tensor([0.8]), torch.tensor([1.2]), depth)
    t = math.exp(-1.2)
    assert torch.allclose(out, img * t + 0.8 * (1 - t), atol=1e-6)
    assert out.std() < img.std()


def test_haze_synthetic_depth_is_denser_at_the_top():
    img = _smooth_image()
    d = synthetic_depth(1, 64, 64)
    assert d[0, 0, 0, 0] == 1 and abs(d[0, 0, -1, 0].item() - 0.25) < 1e-6
    out = haze(img, torch.tensor([1.0]), torch.tensor([1.8]))
    assert (out - img)[..., :8, :].mean() > (out - img)[..., -8:, :].mean()


# ----------------------------------------------------------------------------- blur kernels


def _ref_motion_blur(img: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """imagecorruptions' shift-and-sum motion blur as AgenticIR runs it (numpy)."""
    width = radius * 2 + 1
    k = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2))
    kernel = k / k.sum()
    point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
    hypot = math.hypot(*point)
    out = np.zeros_like(img)
    for i in range(width):
        dy = -math.ceil(i * point[0] / hypot - 0.5)
        dx = -math.ceil(i * point[1] / hypot - 0.5)
        shifted = img
        if dx < 0:
            shifted = np.roll(shifted, img.shape[1] + dx, axis=1)
            shifted[:, dx:] = shifted[:, dx - 1 : dx]
        elif dx > 0:
            shifted = np.roll(shifted, dx, axis=1)
            shifted[:, :dx] = shifted[:, dx : dx + 1]
        if dy < 0:
            shifted = np.roll(shifted, img.shape[0] + dy, axis=0)
            shifted[dy:, :] = shifted[dy - 1 : dy, :]
        elif dy > 0:
            shifted = np.roll(shifted, dy, axis=0)
            shifted[:dy, :] = shifted[dy : dy + 1, :]
        out = out + kernel[i] * shifted
    return out


@pytest.mark.parametrize("radius,sigma", [(10, 3), (15, 5), (15, 8)])
def test_motion_kernel_support_and_sum(radius, sigma):
    k = motion_kernel(torch.tensor([radius, radius]), torch.tensor([sigma, sigma]), torch.tensor([0.0, 90.0]))
    assert torch.allclose(k.sum((1, 2)), torch.ones(2, dtype=torch.float64))
    c = k.shape[-1] // 2
    # angle 0: a horizontal line of 2r+1 taps starting at the centre, Gaussian-decaying
    row = k[0, c, c : c + 2 * radius + 1]
    assert torch.allclose(row.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert (row[1:] < row[:-1]).all()
    # angle 90: the same line, vertical (downwards)
    assert torch.allclose(k[1, c : c + 2 * radius + 1, c], row)


@pytest.mark.parametrize("angle", [-89.5, -33.0, 0.0, 45.0, 77.7])
def test_motion_blur_matches_imagecorruptions(angle):
    img = torch.rand(1, 3, 40, 48, generator=_gen(), dtype=torch.float64)
    out = motion_blur(img, torch.tensor([15]), torch.tensor([5.0]), torch.tensor([angle]))
    assert np.abs(_np(out) - _ref_motion_blur(_np(img), 15, 5.0, angle)).max() < 1e-9


def test_disk_kernel_sum_radius_and_opencv():
    for radius, alias in [(3, 0.1), (4, 0.5), (6, 0.5)]:
        k = disk_kernel(torch.tensor([radius]), torch.tensor([alias]))[0]
        assert abs(k.sum().item() - 1) < 1e-12
        assert torch.allclose(k, k.flip(0)) and torch.allclose(k, k.T)
        ys, _xs = (k > 0).nonzero().T - 8
        assert ys.abs().max() == radius + 1  # disk radius dilated by the 3x3 anti-aliasing blur
        ax = np.arange(-8, 9)
        xx, yy = np.meshgrid(ax, ax)
        disk = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
        ref = cv2.GaussianBlur(disk / disk.sum(), ksize=(3, 3), sigmaX=alias)
        assert np.abs(k.numpy() - ref).max() < 1e-6


def test_defocus_blur_matches_opencv_filter2d():
    img = torch.rand(1, 3, 33, 41, generator=_gen())
    out = defocus_blur(img, torch.tensor([6.0]), torch.tensor([0.5]))
    k = disk_kernel(torch.tensor([6]), torch.tensor([0.5]))[0].numpy().astype(np.float32)
    ref = np.stack([cv2.filter2D(_np(img)[..., c].astype(np.float32), -1, k) for c in range(3)], -1)
    assert np.abs(_np(out) - ref).max() < 1e-5


@pytest.mark.parametrize(
    "border,cv_border", [("reflect101", cv2.BORDER_REFLECT_101), ("replicate", cv2.BORDER_REPLICATE)]
)
def test_filter2d_matches_opencv_for_asymmetric_kernel(border, cv_border):
    img = torch.rand(1, 3, 20, 23, generator=_gen(), dtype=torch.float64)
    k = torch.zeros(1, 7, 7, dtype=torch.float64)
    k[0, 1, 5], k[0, 3, 3], k[0, 6, 0] = 0.2, 0.5, 0.3
    out = filter2d(img, k, border)
    ref = np.stack([cv2.filter2D(_np(img)[..., c], -1, k[0].numpy(), borderType=cv_border) for c in range(3)], -1)
    assert np.abs(_np(out) - ref).max() < 1e-12


def test_realesrgan_kernels_normalised_and_shaped():
    size = torch.tensor([7, 21])
    k = gaussian_family_kernel(
        size,
        torch.tensor([2.0, 1.0]),
        torch.tensor([2.0, 3.0]),
        torch.tensor([0.0, 0.5]),
        torch.tensor([1.0, 1.0]),
        torch.tensor([False, False]),
    )
    assert k.shape == (2, 21, 21) and torch.allclose(k.sum((1, 2)), torch.ones(2, dtype=torch.float64))
    assert k[0, :7].abs().sum() == 0 and k[0, 7:14, 7:14].sum() > 0.999  # 7x7 support padded to 21
    g = torch.exp(-(torch.arange(-3.0, 4.0, dtype=torch.float64) ** 2) / 8)
    iso = torch.outer(g, g) / torch.outer(g, g).sum()
    assert torch.allclose(k[0, 7:14, 7:14], iso)  # isotropic Gaussian is separable
    s = sinc_kernel(torch.tensor([21]), torch.tensor([math.pi / 3]))[0]
    assert torch.allclose(s.sum(), torch.tensor(1.0, dtype=torch.float64)) and s[10, 10] == s.max()
    assert (s < 0).any()  # ringing lobes of the circular low-pass


# ----------------------------------------------------------------------------- rain


def _cv_rain_kernel(length: int, angle: int) -> np.ndarray:
    trans = cv2.getRotationMatrix2D((length / 2, length / 2), angle - 45, 1 - length / 100.0)
    k = cv2.warpAffine(np.diag(np.ones(length)), trans, (length, length))
    return cv2.GaussianBlur(k, (3, 3), 0)


def test_rain_kernel_matches_opencv():
    for length, angle in [(20, -30), (27, 0), (38, 13), (39, 29)]:
        mine = rain_kernel(torch.tensor([length]), torch.tensor([angle - 45.0]))[0].numpy()
        off = mine.shape[0] // 2 - length // 2
        assert np.abs(mine[off : off + length, off : off + length] - _cv_rain_kernel(length, angle)).max() < 1e-12


def test_rain_layer_matches_agenticir():
    rng = np.random.default_rng(0)
    field = rng.uniform(0, 1, (48, 56))
    length, angle, value = 27, -12, 80
    noise = field * 256
    noise[noise < 256 - value * 0.01] = 0
    noise = cv2.filter2D(noise, -1, np.array([[0, 0.1, 0], [0.1, 8, 0.1], [0, 0.1, 0]]))
    blurred = cv2.filter2D(noise, -1, _cv_rain_kernel(length, angle))
    cv2.normalize(blurred, blurred, 0, 255, cv2.NORM_MINMAX)
    ref = np.array(blurred, dtype=np.uint8).astype(np.float64)
    mine = rain_layer(
        torch.from_numpy(field)[None, None], torch.tensor([value]), torch.tensor([length]), torch.tensor([angle])
    )
    diff = np.abs(mine[0, 0].numpy() * 255 - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # only 8-bit truncation of float-rounded values


def test_rain_adds_bright_vertical_streaks():
    img = torch.full((1, 3, 96, 96), 0.3)
    out = rain(img, torch.tensor([99.0]), torch.tensor([30]), torch.tensor([0]), _gen())
    added = (out - img)[:, 0]
    assert (out >= img - 1e-7).all() and added.max() > 0.5
    assert 0.01 < (added > 0.05).float().mean() < 0.6
    grad_x = (added[..., 1:] - added[..., :-1]).abs().mean()
    grad_y = (added[..., 1:, :] - added[..., :-1, :]).abs().mean()
    assert grad_x > 3 * grad_y  # angle 0: streaks run vertically
