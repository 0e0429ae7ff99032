"""FlowVQTalker core: face model, audio features, coefficient takes and (later) the flow and image models.

Nothing in this package knows about HTTP or Blender (see ../shared/DESIGN.md, section 1).
"""

__version__ = "0.1.0"
