"""The flow-based coefficient generator (design section 3, paper §3.2).

`config` (architecture), `model` (ExpFlow, PoseFlow, `CoeffModel`), `sampler` (batched, seeded,
autoregressive takes), `bank` (latent bank and manifold projection), `weights` (safetensors on
disk) and `generator` (the inference API the server and the CLI use).
"""
