"""GAN objectives as per-example losses of discriminator logits.

`ns` is the non-saturating form of the minimax objective (Goodfellow et al. 2014): D minimises
binary cross-entropy, G maximises log D(G(z)). `hinge` is the hinge loss of Lim & Ye (2017)
and Miyato et al. (2018). `wgan-gp` is the Wasserstein critic loss of Gulrajani et al. (2017);
its gradient penalty is added by the model. Every function returns one value per example, so
the caller averages over the global batch.
"""

from __future__ import annotations

import tensorflow as tf


def d_loss_ns(real_logits, fake_logits, label_smoothing=0.0):
    """Cross-entropy with real targets 1 - label_smoothing (one-sided smoothing) and fake targets 0."""
    real_target = 1.0 - label_smoothing
    real = real_target * tf.nn.softplus(-real_logits) + (1.0 - real_target) * tf.nn.softplus(real_logits)
    return real + tf.nn.softplus(fake_logits)


def g_loss_ns(fake_logits):
    return tf.nn.softplus(-fake_logits)


def d_loss_hinge(real_logits, fake_logits):
    return tf.nn.relu(1.0 - real_logits) + tf.nn.relu(1.0 + fake_logits)


def d_loss_wgan(real_logits, fake_logits):
    return fake_logits - real_logits


def g_loss_critic(fake_logits):
    """G loss for hinge and WGAN: raise the critic's score of fakes."""
    return -fake_logits


LOSSES = {
    "ns": (d_loss_ns, g_loss_ns),
    "hinge": (d_loss_hinge, g_loss_critic),
    "wgan-gp": (d_loss_wgan, g_loss_critic),
}


def gradient_penalty(critic, real, fake, alpha):
    """(||grad_x critic(x_hat)||_2 - 1)^2 at x_hat = real + alpha * (fake - real), per example.

    `critic` maps images to logits [N]; `alpha` is uniform in [0, 1], one value per example.
    """
    x_hat = real + alpha[:, None, None, None] * (fake - real)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat)
    grads = tape.gradient(scores, x_hat)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
    return tf.square(norm - 1.0)
