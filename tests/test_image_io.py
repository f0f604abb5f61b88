"""Image loading / saving: every documented conversion and every bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from rar.utils.image_io import ImageLoadError, list_images, load_image, save_image, sha256_file


def test_rgb_png_round_trip_with_odd_size(tmp_path):
    img = torch.rand(3, 17, 23)
    path = save_image(img, tmp_path / "odd.png")
    loaded = load_image(path)
    assert loaded.shape == (3, 17, 23) and loaded.dtype == torch.float32
    assert torch.equal(loaded, (img * 255).round() / 255)


def test_grayscale_is_replicated(tmp_path):
    gray = np.arange(5 * 7, dtype=np.uint8).reshape(5, 7) * 7
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    loaded = load_image(tmp_path / "gray.png")
    assert loaded.shape == (3, 5, 7)
    assert torch.equal(loaded[0], loaded[1]) and torch.equal(loaded[1], loaded[2])
    assert torch.allclose(loaded[0], torch.from_numpy(gray).float() / 255)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red
    rgba[0, 0, 3] = 255  # opaque
    rgba[0, 1, 3] = 0  # fully transparent
    rgba[0, 2, 3] = 51  # 20 % opaque
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    assert loaded.shape == (3, 4, 4)
    assert torch.allclose(loaded[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(loaded[:, 0, 1], torch.tensor([1.0, 1.0, 1.0]))
    assert torch.allclose(loaded[:, 0, 2], torch.tensor([1.0, 0.8, 0.8]), atol=1e-6)


def test_palette_is_expanded(tmp_path):
    image = Image.new("P", (3, 2))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "palette.png")
    loaded = load_image(tmp_path / "palette.png")
    assert torch.allclose(loaded[:, 0, 0] * 255, torch.tensor([10.0, 20.0, 30.0]))
    assert torch.allclose(loaded[:, 0, 1] * 255, torch.tensor([200.0, 100.0, 50.0]))


def test_palette_gif_falls_back_to_pillow(tmp_path):
    Image.new("RGB", (6, 5), (0, 128, 255)).save(tmp_path / "flat.gif")
    loaded = load_image(tmp_path / "flat.gif")
    assert loaded.shape == (3, 5, 6)
    assert torch.allclose(loaded[:, 2, 2] * 255, torch.tensor([0.0, 128.0, 255.0]), atol=1.0)


def test_16bit_png_is_scaled_by_65535(tmp_path):
    rgb16 = np.array([[[0, 32768, 65535]]], dtype=np.uint16)  # RGB order
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])
    loaded = load_image(tmp_path / "rgb16.png")
    assert torch.allclose(loaded[:, 0, 0], torch.tensor([0.0, 32768 / 65535, 1.0]))
    gray16 = np.array([[1000, 60000]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "gray16.png"), gray16)
    loaded = load_image(tmp_path / "gray16.png")
    assert loaded.shape == (3, 1, 2)
    assert torch.allclose(loaded[:, 0, 1], torch.full((3,), 60000 / 65535))


def test_corrupt_file_names_the_file(tmp_path):
    save_image(torch.rand(3, 32, 32), tmp_path / "good.png")
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="truncated.png"):
        load_image(tmp_path / "truncated.png")


def test_non_image_and_empty_file_name_the_file(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image")
    with pytest.raises(ImageLoadError, match="notes.png"):
        load_image(tmp_path / "notes.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty.jpg.*empty"):
        load_image(tmp_path / "empty.jpg")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    path = save_image(torch.zeros(1, 3, 8, 8), tmp_path / "sub" / "x.png")
    with pytest.raises(FileExistsError, match="x.png"):
        save_image(torch.ones(3, 8, 8), path)
    assert load_image(path).max() == 0
    save_image(torch.ones(3, 8, 8), path, overwrite=True)
    assert load_image(path).min() == 1


def test_save_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="PNG"):
        save_image(torch.zeros(3, 4, 4), tmp_path / "x.jpg")
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        save_image(torch.zeros(4, 4), tmp_path / "x.png")
    with pytest.raises(ValueError, match="non-finite"):
        save_image(torch.full((3, 4, 4), float("nan")), tmp_path / "x.png")


def test_save_clamps_and_is_deterministic(tmp_path):
    img = torch.rand(3, 20, 20) * 1.4 - 0.2
    a, b = save_image(img, tmp_path / "a.png"), save_image(img, tmp_path / "b.png")
    assert sha256_file(a) == sha256_file(b)
    assert torch.equal(load_image(a), (img.clamp(0, 1) * 255).round() / 255)


def test_list_images_sorted_and_filtered(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.txt", "d.webp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "d.webp"]


def test_list_images_errors(tmp_path):
    with pytest.raises(ValueError, match="no image files in"):
        list_images(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_images(tmp_path / "nowhere")
