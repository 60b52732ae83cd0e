"""Small architectures the tests of several packages share (a family's test and its trainer's)."""

from __future__ import annotations

DIGITS = (1, 8, 8)
"""The digits task's input shape (C, H, W)."""

FAST_IMAGE_GAN = {
    "latent": 16,
    "generator": "dense",
    "g_layers": [{"width": 128}],
    "g_norm": "batch",
    "g_activation": "relu",
    "discriminator": "dense",
    "d_layers": [{"width": 128}],
    "d_norm": "layer",
    "d_activation": "leaky_relu",
    "g_lr": 0.001,
    "d_lr": 0.001,
}
"""A small dense GAN that leaves mode collapse behind within two epochs of batch 16."""

SMALL_CONV_VAE = {
    "network": "conv",
    "layers": [{"filters": 16, "downsample": True}, {"filters": 32, "downsample": False}],
    "activation": "gelu",
    "norm": "batch",
    "latent": 4,
    "beta": 0.5,
}
"""A two-layer convolutional VAE for digits."""
