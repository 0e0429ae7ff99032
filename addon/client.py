"""HTTP client for the FlowVQ server (docs/api.md): one method per endpoint, no bpy.

Every request has an explicit ``(connect, read)`` timeout: the connect timeout is short because
the server is local (a refused or silent port means it is not running), the read timeout bounds
how long one answer may take (uploads and frame archives can be large). Every failure becomes a
`ServerError` whose message a user can act on.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import requests

__all__ = ["ServerError", "Connection", "Client", "WIRE_DECIMALS"]

API = "/v1"
WIRE_DECIMALS = 6  # a take's numbers travel rounded to this many places (core.formats.takes.DECIMALS)


class ServerError(Exception):
    """A request failed: the server is unreachable, refused the token, or answered an error.

    ``code`` is the server's error code (``"unreachable"``, ``"timeout"`` for transport failures).
    """

    def __init__(self, message: str, code: str = "error", status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Connection:
    """Where the server is and how long to wait for it (seconds)."""

    url: str
    token: str = ""
    connect_timeout: float = 3.0
    read_timeout: float = 60.0


def _error_from_response(response: requests.Response, conn: Connection) -> ServerError:
    """The `ServerError` for a 4xx/5xx answer, using the API's one error shape when present."""
    if response.status_code == 401:
        return ServerError(f"the server at {conn.url} refused the token: set the token it was started "
                           f"with in the add-on preferences", "unauthorized", 401)
    try:
        error = response.json()["error"]
        message, code = str(error["message"]), str(error["code"])
    except (ValueError, KeyError, TypeError):
        message, code = f"HTTP {response.status_code} from {response.url}", "http_error"
    return ServerError(f"server error: {message}", code, response.status_code)


class Client:
    """A `requests.Session` bound to one `Connection`."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.session = requests.Session()
        if conn.token:
            self.session.headers["Authorization"] = f"Bearer {conn.token}"

    def close(self) -> None:
        """Release the session's connections."""
        self.session.close()

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        """Send one request; transport failures and error answers raise `ServerError`."""
        url = self.conn.url.rstrip("/") + API + path
        try:
            response = self.session.request(
                method, url, timeout=(self.conn.connect_timeout, self.conn.read_timeout), **kwargs)
        except requests.Timeout as exc:
            raise ServerError(f"the server at {self.conn.url} did not answer in time ({exc.__class__.__name__})",
                              "timeout") from exc
        except (requests.ConnectionError, requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as exc:
            raise ServerError(f"cannot reach the FlowVQ server at {self.conn.url}: is it running, "
                              f"and is the URL right?", "unreachable") from exc
        if response.status_code >= 400:
            raise _error_from_response(response, self.conn)
        return response

    def health(self) -> dict:
        """``GET /v1/health``: ``{"status": "ready", ...}``; a loading server raises code ``starting``."""
        return self._request("GET", "/health").json()

    def info(self) -> dict:
        """``GET /v1/info``: emotions, fps, names, limits."""
        return self._request("GET", "/info").json()

    def face_model(self) -> bytes:
        """``GET /v1/face-model``: the face model ``.npz`` bytes."""
        return self._request("GET", "/face-model").content

    def submit(self, audio: Path, settings: dict, portrait: Path | None = None) -> dict:
        """``POST /v1/jobs``: start generating takes; returns the job object."""
        with open(audio, "rb") as audio_fh:
            files = {"audio": (audio.name, audio_fh), "settings": (None, json.dumps(settings))}
            if portrait is None:
                return self._request("POST", "/jobs", files=files).json()
            with open(portrait, "rb") as portrait_fh:
                files["portrait"] = (portrait.name, portrait_fh)
                return self._request("POST", "/jobs", files=files).json()

    def render(self, take: dict, settings: dict, portrait: Path | None = None) -> dict:
        """``POST /v1/render``: render frames of a (hand-edited) take, sent as compact JSON (its rows
        rounded to `WIRE_DECIMALS` places by the caller); returns the job object."""
        files = {"take": (None, json.dumps(take, separators=(",", ":"))), "settings": (None, json.dumps(settings))}
        if portrait is None:
            return self._request("POST", "/render", files=files).json()
        with open(portrait, "rb") as portrait_fh:
            files["portrait"] = (portrait.name, portrait_fh)
            return self._request("POST", "/render", files=files).json()

    def job(self, job_id: str) -> dict:
        """``GET /v1/jobs/{id}``: the job object (state, stage, progress)."""
        return self._request("GET", f"/jobs/{job_id}").json()

    def takes(self, job_id: str) -> list[dict]:
        """``GET /v1/jobs/{id}/takes``: the finished job's takes."""
        return self._request("GET", f"/jobs/{job_id}/takes").json()["takes"]

    def frames_zip(self, job_id: str, take: int) -> bytes:
        """``GET /v1/jobs/{id}/frames/{take}.zip``: all rendered frames of one take."""
        return self._request("GET", f"/jobs/{job_id}/frames/{take}.zip").content

    def cancel(self, job_id: str) -> dict:
        """``POST /v1/jobs/{id}/cancel``: cancel a queued or running job (asking twice is asking
        once; the job and whatever it rendered stay on the server); returns the job object."""
        return self._request("POST", f"/jobs/{job_id}/cancel").json()
