"""Training stage ``autoencoder`` (tiny experiment only; real runs load SD3.5's VAE instead).

Trains a small diffusers ``AutoencoderKL`` (SD3.5's VAE class) from scratch to reconstruct clean
*and* degraded crops, since RAR encodes both: the degraded input and every restored round. One
step: encode ``2x - 1`` of the batch's LQ and HQ images, decode the posterior mean (RAR never
samples the posterior), and return ``mse_weight * MSE + l1_weight * L1 + kl_weight * KL``.

When a phase ends, :meth:`AutoencoderStage.export` computes SD3's latent shift and scale over
the training latents (:func:`latent_statistics`) and writes a diffusers folder
``run_dir/model/vae/`` (``config.json`` with ``shift_factor``/``scaling_factor``, weights), which
:func:`rar.uir.autoencoders.build_kl_autoencoder` loads exactly like SD3.5's ``vae/`` folder.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torchvision.utils import make_grid

from rar.training.stage import Stage, StepOutput, first_batch
from rar.utils.image_io import save_image


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR ``[B]`` in dB of images ``[B, 3, H, W]`` in ``[0, 1]``, capped at 100 dB."""
    mse = ((a.float() - b.float()) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1 / mse)


@dataclass
class LatentStats:
    """SD3's latent normalisation measured on a set of images.

    Attributes:
        shift_factor: mean of every latent value (posterior means, all channels and positions).
        scaling_factor: ``1 / std`` of ``latent - shift_factor``; ``(z - shift) * scale`` then has
            zero mean and unit standard deviation on those images.
        count: number of latent values measured.
    """

    shift_factor: float
    scaling_factor: float
    count: int


@torch.no_grad()
def latent_statistics(vae: AutoencoderKL, batches) -> LatentStats:
    """Shift and scale the way SD3 defines them, over the posterior means of ``batches``
    (an iterable of image tensors ``[B, 3, H, W]`` in ``[0, 1]``). Accumulates in float64."""
    total, total_sq, count = 0.0, 0.0, 0
    for images in batches:
        z = vae.encode(images.to(vae.device, vae.dtype) * 2 - 1).latent_dist.mode().double()
        total += z.sum().item()
        total_sq += (z * z).sum().item()
        count += z.numel()
    if count == 0:
        raise ValueError("latent_statistics needs at least one image")
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean * mean, 0.0))
    if std == 0.0:
        raise ValueError("the latents are constant: cannot compute a scaling factor")
    return LatentStats(shift_factor=mean, scaling_factor=1.0 / std, count=count)


class AutoencoderStage(Stage):
    """The ``autoencoder`` stage. Children: ``vae`` (a diffusers ``AutoencoderKL``, trained).

    Args:
        vae: the autoencoder to train (random init; built from the stage config).
        mse_weight, l1_weight: weights of the pixel losses (images in ``[-1, 1]``).
        kl_weight: weight of the posterior's KL to N(0, I) (mean over the batch of its per-image sum).
        stats_samples: how many training items (LQ and HQ of each) :meth:`export` encodes to
            measure the latent shift and scale.
        stats_batch_size: batch size of that pass.
        val_dataset: dataset whose first ``val_samples`` items :meth:`validate` reconstructs
            (collated with its ``collate`` method); None disables validation.
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        mse_weight: float = 1.0,
        l1_weight: float = 0.0,
        kl_weight: float = 1e-6,
        stats_samples: int = 256,
        stats_batch_size: int = 32,
        val_dataset: torch.utils.data.Dataset | None = None,
        val_samples: int = 8,
    ) -> None:
        super().__init__()
        if not isinstance(vae, AutoencoderKL):
            raise TypeError(f"the autoencoder stage trains a diffusers AutoencoderKL, got {type(vae).__name__}")
        if min(mse_weight, l1_weight, kl_weight) < 0 or mse_weight + l1_weight == 0:
            raise ValueError(f"loss weights must be >= 0 with a pixel loss, got mse={mse_weight} l1={l1_weight} "
                             f"kl={kl_weight}")
        if stats_samples < 1 or stats_batch_size < 1:
            raise ValueError(f"stats_samples and stats_batch_size must be >= 1, got {stats_samples}, {stats_batch_size}")
        self.vae = vae
        self.mse_weight, self.l1_weight, self.kl_weight = mse_weight, l1_weight, kl_weight
        self.stats_samples, self.stats_batch_size = stats_samples, stats_batch_size
        self.val_dataset, self.val_samples = val_dataset, val_samples
        self._val_batch = None
        self.train()

    @property
    def stride(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def _images(self, batch) -> torch.Tensor:
        """LQ and HQ of a restoration batch as one ``[2B, 3, H, W]`` tensor in ``[-1, 1]``."""
        if batch.lq.shape != batch.hq.shape:
            raise ValueError(f"the autoencoder stage needs LQ and HQ of the same size, got {tuple(batch.lq.shape)} "
                             f"and {tuple(batch.hq.shape)} (upsample low-resolution LQ in the dataset)")
        x = torch.cat([batch.lq, batch.hq]).to(self.vae.device, self.vae.dtype)
        if x.shape[-1] % self.stride or x.shape[-2] % self.stride:
            raise ValueError(f"crops must be multiples of the autoencoder's stride {self.stride}, got {tuple(x.shape[-2:])}")
        return x * 2 - 1

    def forward(self, batch) -> StepOutput:
        """One step on a ``RestorationBatch`` (anything with same-size ``lq`` and ``hq``)."""
        x = self._images(batch)
        posterior = self.vae.encode(x).latent_dist
        recon = self.vae.decode(posterior.mode()).sample
        mse = F.mse_loss(recon.float(), x.float())
        l1 = F.l1_loss(recon.float(), x.float())
        kl = posterior.kl().mean()
        loss = self.mse_weight * mse + self.l1_weight * l1 + self.kl_weight * kl
        # PSNR of [0, 1] images from the MSE of [-1, 1] images (4x larger)
        return StepOutput(loss, {"mse": mse.item(), "l1": l1.item(), "kl": kl.item(),
                                 "psnr": 10 * math.log10(4 / max(mse.item(), 1e-10))})

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` in ``[0, 1]`` (sides multiples of the stride) → reconstructions in ``[0, 1]``."""
        z = self.vae.encode(images.to(self.vae.device, self.vae.dtype) * 2 - 1).latent_dist.mode()
        return ((self.vae.decode(z).sample.float() + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def validate(self, out_dir: pathlib.Path, step: int) -> dict[str, float]:
        """Reconstruct the first ``val_samples`` validation pairs; write ``out_dir/reconstructed.png``
        (rows: LQ | its reconstruction | HQ | its reconstruction) and return their mean PSNRs."""
        if self.val_dataset is None:
            return {}
        if self._val_batch is None:
            self._val_batch = first_batch(self.val_dataset, self.val_samples)
        lq, hq = self._val_batch.lq, self._val_batch.hq
        lq_rec, hq_rec = self.reconstruct(lq), self.reconstruct(hq)
        grid = make_grid(torch.stack([lq, lq_rec.cpu(), hq, hq_rec.cpu()], dim=1).flatten(0, 1), nrow=4, padding=2,
                         pad_value=1.0)
        save_image(grid, pathlib.Path(out_dir) / "reconstructed.png", overwrite=True)
        return {"psnr_lq": psnr(lq_rec.cpu(), lq).mean().item(), "psnr_hq": psnr(hq_rec.cpu(), hq).mean().item()}

    @torch.no_grad()
    def export(self, model_dir: pathlib.Path, dataset: torch.utils.data.Dataset) -> None:
        """Measure the latent shift/scale on the first ``stats_samples`` items of ``dataset`` (LQ and
        HQ) and write the diffusers folder ``model_dir/vae`` with them in its config."""
        n = min(self.stats_samples, len(dataset))
        collate = getattr(dataset, "collate", None) or torch.utils.data.default_collate

        def batches():
            for start in range(0, n, self.stats_batch_size):
                batch = collate([dataset[i] for i in range(start, min(start + self.stats_batch_size, n))])
                yield torch.cat([batch.lq, batch.hq])

        was_training = self.vae.training
        self.vae.eval()
        stats = latent_statistics(self.vae, batches())
        self.vae.train(was_training)
        self.vae.register_to_config(shift_factor=stats.shift_factor, scaling_factor=stats.scaling_factor)
        self.vae.save_pretrained(pathlib.Path(model_dir) / "vae", safe_serialization=True)

