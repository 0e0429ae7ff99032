"""Safe by default: a public bind needs a token, and a token server refuses requests without it."""

import subprocess
import sys

import requests

from server.process import free_port
from tests.server.conftest import HTTP_TIMEOUT, assert_error, start_server

TOKEN = "s3cret-token-for-tests"


def test_non_loopback_bind_without_a_token_refuses_to_start(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "serve", "--host", "0.0.0.0", "--port", str(free_port()),
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "flowvq: error:" in result.stderr and "token" in result.stderr
    assert not (tmp_path / "data").exists()


def test_token_server_needs_the_bearer_token_except_for_health(tmp_path):
    process = start_server(tmp_path / "data", "--token", TOKEN)
    try:
        url = process.url
        assert requests.get(f"{url}/v1/health", timeout=HTTP_TIMEOUT).status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            response = requests.get(f"{url}/v1/info", headers=headers, timeout=HTTP_TIMEOUT)
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
        assert_error(requests.post(f"{url}/v1/jobs", timeout=HTTP_TIMEOUT), 401, "unauthorized")
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.get(f"{url}/v1/info", headers=good, timeout=HTTP_TIMEOUT).status_code == 200
        assert requests.get(f"{url}/v1/jobs", headers=good, timeout=HTTP_TIMEOUT).json() == []
    finally:
        process.stop()
