"""RAR: Restore, Assess, Repeat.

Latent-space iterative image restoration: a noise-free SD3.5 flow-matching restorer (UIR)
driven by a DepictQA-style latent quality assessor (LQA).
"""

__version__ = "0.1.0"
