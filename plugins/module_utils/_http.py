# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP helpers shared by the probe modules: URL checks, requests and excerpts."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError

MAX_BODY_BYTES = 1024 * 1024


def validate_base_url(base_url):
    """Raise ValueError unless base_url is an http or https URL with a host."""
    try:
        parsed = urllib.parse.urlsplit(base_url)
        # urlsplit checks the port only when it is read.
        parsed.port  # noqa: B018
    except ValueError as error:
        # For example "Invalid IPv6 URL" for an unclosed "[", or a port that is
        # not a number from 0 to 65535.
        raise ValueError(
            f"base_url {base_url!r} is not a valid URL ({error}); use a URL such as"
            " 'http://127.0.0.1:18080'"
        ) from None
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(
            f"base_url {base_url!r} is not an http or https URL with a host; "
            "use a URL such as 'http://127.0.0.1:18080'"
        )


def build_url(base_url, path):
    return base_url.rstrip("/") + path


def describe_error(error, timeout):
    """Return a short text for a request that received no HTTP response."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, TimeoutError):
        return f"timed out after {timeout} s"
    return str(reason) or type(reason).__name__


def excerpt(text, limit):
    """Shorten text to limit characters on one line, marking a cut with '...'."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 3] + "..."


def send_request(request, method, url, timeout, data=None, headers=None):
    """Send one request through an ansible.module_utils.urls.Request.

    data, when not None, is sent as a JSON body. Redirects are not followed. Return a
    dict with status (None without a response), location, body (bytes, at most
    MAX_BODY_BYTES), error (text or None) and seconds (None without a response).
    """
    request_headers = dict(headers or {})
    payload = None
    if data is not None:
        payload = json.dumps(data).encode("utf-8")
        request_headers["Content-Type"] = "application/json"

    started = time.perf_counter()
    status = None
    location = None
    body = b""
    try:
        response = request.open(
            method,
            url,
            data=payload,
            headers=request_headers,
            timeout=timeout,
            follow_redirects="none",
        )
        status = response.getcode()
        body = response.read(MAX_BODY_BYTES)
    except urllib.error.HTTPError as error:
        # ansible.module_utils.urls (ansible-core 2.19) raises HTTPError for every
        # non-2xx status, including a 3xx when follow_redirects is 'none'.
        status = error.code
        if error.headers is not None:
            location = error.headers.get("Location")
        try:
            body = error.read(MAX_BODY_BYTES)
        except (OSError, http.client.HTTPException, AttributeError):
            body = b""
    except (
        urllib.error.URLError,
        UrlsConnectionError,
        http.client.HTTPException,
        OSError,
    ) as error:
        return {
            "status": None,
            "location": None,
            "body": b"",
            "error": describe_error(error, timeout),
            "seconds": None,
        }
    return {
        "status": status,
        "location": location,
        "body": body or b"",
        "error": None,
        "seconds": time.perf_counter() - started,
    }


def parse_json_object(body):
    """Return body decoded as a JSON object, or None when it is not one."""
    try:
        document = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
