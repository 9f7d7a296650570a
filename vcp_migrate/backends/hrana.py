"""A small client for libSQL's server (sqld, Turso) over Hrana over HTTP, on the standard library.

One ``Stream`` is one server-side connection: the server hands back a baton with every answer and
the next request must carry it, so connection state (an open transaction, ``PRAGMA foreign_keys``)
lasts from one ``execute`` to the next. Every request has a timeout. Errors are ``sqlite3``
exceptions, so code written for a local file handles them as it already does:

- a statement the server refuses: ``ServerError`` (an ``sqlite3.OperationalError``), or
  ``ConstraintError`` (an ``sqlite3.IntegrityError``) for a constraint, with the server's
  ``code`` and message;
- a server that cannot be reached or does not answer in time: ``ServerUnreachable`` (an
  ``sqlite3.OperationalError``); whether the request took effect is then unknown, and the stream
  cannot be used again.

What differs from a local file: the server expires a stream idle for 10 s (rolling back its
transaction), takes the write lock from a transaction older than 5 s when another writer waits,
and refuses TEMP objects, ATTACH, VACUUM and ``PRAGMA journal_mode``. Non-finite floats cannot be
sent (the protocol's JSON has no infinity) and come back as None.

The auth token is sent only in the ``Authorization`` header, and only to the host and port given
(a redirect, or a ``base_url`` at another host, is refused): no message or repr holds it.
What the protocol's JSON carries (arguments, results, a refusal's error) is in ``hrana_protocol``,
which stands alone too: nothing else of vcp_migrate is imported here, and nothing imports this
module unless a URL is used.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import math
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from .hrana_protocol import ConstraintError, Result, ServerError, Value, encode, read_result, statement_error

# The client's own names, and the protocol's it answers with.
__all__ = ["ConstraintError", "Result", "ServerError", "ServerUnreachable", "Stream", "Value", "http_url"]

DEFAULT_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 2.0  # a close not answered is fine: the server expires an idle stream after 10 s
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
UNKNOWN_EFFECT = "whether the request took effect is unknown"  # a request sent, its answer lost


class ServerUnreachable(sqlite3.OperationalError):
    """The server could not be reached or did not answer within the timeout."""

    def __init__(self, message: str, url: str, said: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.said = said or message  # what happened and what to do, without the URL or the request's effect


def http_url(url: str) -> str:
    """The http(s) base URL of a ``libsql://`` (served over https), ``https://`` or ``http://`` URL.

    Raises ValueError, without repeating the URL's credentials, for any other scheme, a missing
    host, a bad port, or a URL that carries a user, password, query or fragment (the auth token
    is passed on its own, so it never ends up in a URL that gets printed).
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError as exc:  # an unclosed [ of an IPv6 address
        raise ValueError(f"not a valid URL ({exc}): use libsql://HOST, https://HOST or http://HOST:PORT") from None
    scheme = parts.scheme.lower()
    if scheme not in ("libsql", "http", "https"):
        raise ValueError("not a libSQL URL: use libsql://HOST, https://HOST or http://HOST:PORT")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{scheme}://{parts.hostname or ''}: the port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise ValueError(f"{scheme}://: the URL names no host")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port is None else f"{host}:{port}"
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ValueError(
            f"{scheme}://{netloc}: the URL must not carry a user, password, query or fragment"
            " (pass the auth token on its own)"
        )
    if not _sendable(parts.hostname, host=True):
        said = "the host name is not valid (each part between dots is 1 to 63 characters)"
        raise ValueError(f"{scheme}://{netloc}: {said}")
    if not _sendable(parts.path, host=False):
        said = "the URL's path must be ASCII, without spaces or control characters (percent-encode it)"
        raise ValueError(f"{scheme}://{netloc}: {said}")
    return f"{'https' if scheme == 'libsql' else scheme}://{netloc}{parts.path.rstrip('/')}"


def _sendable(text: str, *, host: bool) -> bool:
    """Whether a request can name ``text`` as a host (an address, or a name in IDNA) or a path
    (ASCII: the request line is), rather than fail as an unexpected error when it is sent."""
    if any(character.isspace() or not character.isprintable() for character in text):
        return False
    if not host:
        return text.isascii()
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    try:
        text.encode("idna")
    except UnicodeError:
        return False
    return True


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would resend the Authorization header to wherever it points, and turn the POST
    # into a GET: refuse it, so it surfaces as an HTTP error naming the status.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Stream:
    """One stream (a server-side connection) to a libSQL server.

    ``url``: ``libsql://``, ``https://`` or ``http://``; ``auth_token``: sent as a Bearer token;
    ``timeout``: seconds any single wait on the server may take (connecting, sending, each read).
    Nothing is sent until the first ``execute``. Use ``close()`` (or ``with``) to end it;
    a stream whose request failed in transport, or that the server ended, cannot be used again.
    """

    def __init__(
        self, url: str, auth_token: str | None = None, timeout: float = DEFAULT_TIMEOUT, longer: str | None = None
    ) -> None:
        """``longer``: how the caller's user makes the timeout longer, said when a request ran out of it."""
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.url = http_url(url)
        self.timeout = float(timeout)
        self._longer = longer
        self._token = auth_token
        self._endpoint = f"{self.url}/v2/pipeline"
        self._baton: str | None = None
        self._opened = False  # the server has a stream for us: a null baton now means it ended
        self._closed = False
        self._lost: str | None = None  # why the stream cannot be used any more
        self._advice = "; run again (a new run opens a new stream)"  # what to do then
        direct = urllib.parse.urlsplit(self.url).hostname in _LOOPBACK
        # A proxy cannot reach this machine's loopback, so a proxy setting must not apply to it.
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if direct:
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        token = ", auth_token=<hidden>" if self._token else ""
        return f"Stream({self.url!r}{token}, timeout={self.timeout:g})"

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called, the server ended the stream, or a request failed in transport."""
        return self._closed or self._lost is not None

    def execute(self, sql: str, args: Sequence[Value] = (), *, timeout: float | None = None) -> Result:
        """Run one statement with positional ``?`` arguments on this stream; ``timeout``: a
        shorter wait for this request than the stream's own.

        Raises ConstraintError or ServerError when the server refuses it (the stream stays
        usable), ServerUnreachable when the server cannot be reached or does not answer in
        time, sqlite3.ProgrammingError when the stream was closed or an argument cannot be sent,
        UnicodeEncodeError (as sqlite3) when the statement or a text argument is not UTF-8.
        """
        sql.encode()  # not UTF-8 (a lone surrogate): UnicodeEncodeError, as sqlite3 raises, not the server's HTTP 400
        statement = {"sql": sql, "args": [encode(value, index) for index, value in enumerate(args, 1)]}
        (result,) = self._pipeline([{"type": "execute", "stmt": statement}], timeout=timeout)
        if result.get("type") == "error":
            raise statement_error(result.get("error"))
        return read_result(self.url, result)

    def close(self) -> None:
        """End the stream on the server (rolling back a transaction still open). Idempotent; a
        stream the server already ended, or that cannot be reached, is simply forgotten."""
        if self._closed:
            return
        self._closed = True
        if self._opened and self._lost is None and self._baton is not None:
            # Not answering is fine: the server expires an abandoned stream after 10 s idle, rolling
            # it back; so a close waits a few seconds at most, not the whole timeout of a request.
            with contextlib.suppress(sqlite3.Error):
                self._pipeline([{"type": "close"}], closing=True)

    # -- the wire ----------------------------------------------------------------------------

    def _pipeline(
        self, requests: list[dict[str, Any]], closing: bool = False, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        if self._lost is not None:
            raise ServerError(f"{self.url}: {self._lost}{self._advice}", "STREAM_LOST", self._lost)
        if self._closed and not closing:
            raise sqlite3.ProgrammingError(f"{self.url}: the stream is closed")
        body = json.dumps({"baton": self._baton, "requests": requests}).encode()
        wait = _CLOSE_TIMEOUT if closing else self.timeout if timeout is None else timeout
        answer = self._post(body, min(self.timeout, wait))
        baton = answer.get("baton")
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(requests) or not isinstance(baton, (str, type(None))):
            self._lost = "the server's answer was not a Hrana pipeline response"
            raise ServerError(f"{self.url}: {self._lost} (is this a libSQL server?)", None, self._lost)
        self._baton = baton
        self._opened = True
        if baton is None and not closing:
            self._lost = "the server ended the stream"
        base_url = answer.get("base_url")
        if isinstance(base_url, str) and base_url:
            self._follow(base_url)
        return [item if isinstance(item, dict) else {} for item in results]

    def _follow(self, base_url: str) -> None:
        # The server may ask for the stream's next requests at another address (sqld's
        # --http-self-url). Each request carries the auth token, so only to the same host and
        # port (a redirect is refused for the same reason), never from https to plain http. An
        # address elsewhere ends the stream: its next request says why, and nothing is sent there.
        try:
            target = http_url(base_url)
        except ValueError:
            return
        here, there = urllib.parse.urlsplit(self.url), urllib.parse.urlsplit(target)
        if self.url.startswith("https://") and there.scheme != "https":
            return
        if (there.hostname, _port(there)) != (here.hostname, _port(here)):
            self._lost = (
                f"the server asked for this stream's next requests at another host ({there.scheme}://{there.netloc}),"
                " which would receive the auth token: refused, and nothing was sent there; if that is the server"
                " to use, give its URL"
            )
            self._advice = ""
            return
        self._endpoint = f"{target}/v2/pipeline"

    def _post(self, body: bytes, timeout: float) -> dict[str, Any]:
        request = urllib.request.Request(self._endpoint, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        sent = False
        try:
            with self._opener.open(request, timeout=timeout) as response:
                sent = True
                text = response.read()
        except KeyboardInterrupt:  # its answer, and so the stream's next baton, is lost with it
            self._lost = "a request on this stream was interrupted, so its state is unknown"
            raise
        except urllib.error.HTTPError as exc:
            raise self._refused(exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise self._unreachable(reason, sent or not isinstance(exc, urllib.error.URLError), timeout) from exc
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            self._lost = "the server's answer was not JSON"
            raise ServerError(f"{self.url}: {self._lost} (is this a libSQL server?)", None, self._lost)
        return answer

    def _unreachable(self, reason: object, sent: bool, timeout: float) -> ServerUnreachable:
        self._lost = "an earlier request on this stream got no answer, so its state is unknown"
        if isinstance(reason, TimeoutError):
            what = f"the server did not answer within {timeout:g} s"
            advice = f"check that it is running and not overloaded, or {self._longer or 'allow a longer timeout'}"
        else:
            what = f"the server could not be reached ({_describe(reason)})"
            advice = "check that it is running and that the URL is right"
        effect = UNKNOWN_EFFECT if sent else "nothing was sent"
        return ServerUnreachable(f"{self.url}: {what}; {advice} ({effect})", self.url, f"{what}; {advice}")

    def _refused(self, exc: urllib.error.HTTPError) -> ServerError:
        # A whole request refused (a stream expired, a bad token, no such endpoint): the stream is over.
        try:
            raw = exc.read(4096).decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException):
            raw = ""
        message, code = raw, None
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            message, code = str(parsed.get("message") or parsed.get("error") or raw), parsed.get("code")
        reason = exc.reason if isinstance(exc.reason, str) else ""
        if not message or message.startswith("<"):  # a web page (a proxy's): its HTML is not a message
            message = reason
        message = " ".join(message.split())[:200]
        if code == "STREAM_EXPIRED":
            advice = "the stream was idle for too long and its transaction, if any, was rolled back; run again"
        elif exc.code in (401, 403):
            advice = "the server refused the auth token: check that it is set, valid and allows this database"
        elif exc.code == 404:
            advice = "no Hrana endpoint at this URL: check that it is a libSQL server (sqld) and the path is right"
        elif 300 <= exc.code < 400:
            advice = "the server redirects elsewhere: use the URL it redirects to"
        elif exc.code in (502, 503, 504):
            advice = (
                "the server, or a gateway in front of it, could not answer (overloaded, restarting?), so whether"
                " the request took effect is unknown: check that the server is running, then run again"
            )
        else:
            advice = "check that the URL is a libSQL server (sqld), then run again"
        self._lost = f"the server refused a request (HTTP {exc.code})"
        return ServerError(f"{self.url}: HTTP {exc.code}: {message} ({advice})", code or f"HTTP_{exc.code}", message)


def _port(url: urllib.parse.SplitResult) -> int | None:
    """The port a URL reaches, its scheme's default when it names none."""
    return url.port or {"http": 80, "https": 443}.get(url.scheme)


def _describe(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror).lower()
    return str(reason) or type(reason).__name__
