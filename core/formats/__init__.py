"""The project's file formats, in one place that inference and training both import: takes
(`takes`: the wire and file format of generated animation), what every renderer receives
(`render_inputs`: a portrait, a frame size, a take's coefficients in a face model's order), the
coefficient dataset layout and its training batches (`dataset`) and weights folders (`weights`).
Nothing here imports a model, a trainer, the corpus or an evaluation.
"""
