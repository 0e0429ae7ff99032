"""Server configuration: where it listens, what it loads, where jobs live, and the request limits."""

import ipaddress
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.audio import MAX_FPS, MAX_SECONDS
from core.errors import FlowVQError
from core.formats.takes import DECIMALS

__all__ = [
    "Limits",
    "LIMITS",
    "NUMBER_BYTES",
    "FIELD_MARGIN",
    "ServerConfig",
    "ConfigError",
    "LOOPBACK_NAMES",
    "is_loopback",
    "default_data_dir",
]

LOOPBACK_NAMES: frozenset[str] = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
# One number of a take as JSON, rounded to the wire's places (`core.formats.takes.DECIMALS`), with
# its separator: "-10.123456, ".
NUMBER_BYTES = len("-10.") + DECIMALS + len(", ")
FIELD_MARGIN = 1.25  # room for the take's keys and brackets and for the odd wider number


class ConfigError(FlowVQError):
    """A server configuration that must not start (e.g. a public bind without a token)."""
    code = "config"


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; `/v1/info` publishes them.

    max_upload_bytes: a request body's files (audio, portrait) and small fields; the body may hold
    one JSON field of `field_bytes` more (`body_bytes`); max_audio_seconds: clip duration (from its header);
    max_audio_samples: frames x channels a clip's header may announce (600 s of 48 kHz stereo), so
    that decoding costs time in proportion to what the model hears, not to a tiny compressed upload;
    max_takes: takes per job; max_render_size: preview frame side in pixels; max_queued_jobs: jobs
    queued or running at once before submissions are answered 429; max_json_depth: how deeply the
    JSON of a form field (``settings``, ``take``) may nest arrays and objects (a take nests 3 deep).
    """

    max_upload_bytes: int = 50 * 1024 * 1024
    max_audio_seconds: float = MAX_SECONDS
    max_audio_samples: int = round(MAX_SECONDS) * 48_000 * 2
    max_takes: int = 16
    max_render_size: int = 1024
    max_queued_jobs: int = 64
    max_json_depth: int = 8

    def field_bytes(self, width: int) -> int:
        """The most bytes one JSON form field (``take``, ``settings``) may hold, for a face model
        whose takes have ``width`` numbers a frame (D + 6): the largest legal take, that is
        ``max_audio_seconds`` at `MAX_FPS` frames of `NUMBER_BYTES` numbers, times `FIELD_MARGIN`
        (a reference of as many frames, D numbers each, fits too)."""
        return math.ceil(self.max_audio_seconds * MAX_FPS * width * NUMBER_BYTES * FIELD_MARGIN)

    def body_bytes(self, width: int | None) -> int:
        """The most bytes a request body may hold: ``max_upload_bytes``, plus one field of
        `field_bytes` once the face model's ``width`` is known (None while the model loads)."""
        return self.max_upload_bytes + (self.field_bytes(width) if width is not None else 0)


LIMITS = Limits()


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/flowvq/server`` (default ``~/.local/share/flowvq/server``)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "flowvq" / "server"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1), with or without brackets."""
    name = host.strip().lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """Everything `server.app.create_app` needs.

    host/port: the bind address; device: "auto" | "cpu" | "cuda[:N]"; weights_dir: coefficient
    weights (None = the shipped default); data_dir: the job store; token: the Bearer token (None =
    no auth, loopback only); max_job_age_s / max_store_bytes: finished jobs older than the age, or
    the oldest ones beyond the total size, are deleted.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    device: str = "auto"
    weights_dir: Path | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    token: str | None = None
    max_job_age_s: float = 7 * 24 * 3600.0
    max_store_bytes: int = 5 * 1024**3
    limits: Limits = LIMITS

    def check(self) -> None:
        """Raise `ConfigError` for a configuration that must not start."""
        if self.token is not None and not self.token.strip():
            raise ConfigError("--token must not be empty")
        if not is_loopback(self.host) and self.token is None:
            raise ConfigError(
                f"refusing to listen on {self.host}: a server reachable from other machines needs "
                "a token; pass --token (or set FLOWVQ_TOKEN), or bind 127.0.0.1"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535, got {self.port}")
        if self.max_job_age_s <= 0 or self.max_store_bytes <= 0:
            raise ConfigError("the job store's age and size limits must be positive")
        if self.limits.max_queued_jobs < 1:
            raise ConfigError(f"--max-queued-jobs must be at least 1, got {self.limits.max_queued_jobs}")
