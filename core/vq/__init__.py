"""The image generator of paper §3.3 (design section 4): the codebook autoencoder (`core.vq.codebook`),
the VQIG (`core.vq.vqig`), their training (`core.train.vq`), weights (`core.vq.weights`), data readers
(`core.vq.data`, `core.vq.synthetic`) and the renderer the server calls (`core.vq.renderer`)."""
