"""Add-on preferences: where the server is, the token, timeouts, and a local server command."""

import bpy
from bpy.props import FloatProperty, StringProperty

from .client import Connection

__all__ = ["FlowVQPreferences", "preferences", "connection", "classes"]


class FlowVQPreferences(bpy.types.AddonPreferences):
    """Stored under the add-on's package name, as Blender requires."""

    bl_idname = __package__

    server_url: StringProperty(name="Server URL", default="http://127.0.0.1:8765")
    token: StringProperty(name="Token", subtype="PASSWORD",
                          description="The token the server was started with (--token); empty for none")
    connect_timeout: FloatProperty(name="Connect Timeout (s)", default=3.0, min=0.1, max=60.0,
                                   description="A local server answers at once; longer means it is not running")
    read_timeout: FloatProperty(name="Read Timeout (s)", default=120.0, min=1.0, max=3600.0,
                                description="How long one answer (an upload, a frame archive) may take")
    server_command: StringProperty(name="Server Command", description=(
        "Command that starts a local server, e.g. flowvq serve --port 8765 (stopped when Blender quits)"))

    def draw(self, context: bpy.types.Context) -> None:
        """Connection settings, then the local server command with Start/Stop."""
        layout = self.layout
        for name in ("server_url", "token", "connect_timeout", "read_timeout", "server_command"):
            layout.prop(self, name)
        row = layout.row()
        row.operator("flowvq.start_server", icon="PLAY")
        row.operator("flowvq.stop_server", icon="PAUSE")


def preferences(context: bpy.types.Context) -> FlowVQPreferences:
    """This add-on's preferences."""
    return context.preferences.addons[__package__].preferences


def connection(context: bpy.types.Context) -> Connection:
    """The `Connection` the preferences describe."""
    prefs = preferences(context)
    return Connection(url=prefs.server_url, token=prefs.token,
                      connect_timeout=prefs.connect_timeout, read_timeout=prefs.read_timeout)


classes = (FlowVQPreferences,)
