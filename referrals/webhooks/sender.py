"""One HTTP attempt at delivering a webhook.  The answer is a short fixed description of
what went wrong (or None): never the receiver's response body, which could hold anything."""

from __future__ import annotations

from collections.abc import Mapping

import requests


class WebhookSender:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._session = requests.Session()
        # Webhook egress goes where the operator's unit registry says, not through a
        # proxy picked up from the worker's environment by accident.
        self._session.trust_env = False

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> str | None:
        """None when the receiver answered 2xx; otherwise why the attempt failed."""
        try:
            response = self._session.post(
                url,
                data=body,
                headers=dict(headers),
                timeout=self.timeout,
                # A redirect is a failure, not an instruction: the endpoint is configured.
                allow_redirects=False,
                stream=True,
            )
        except requests.Timeout:
            return "timeout"
        except requests.ConnectionError:
            return "connection failed"
        except requests.RequestException:
            return "request failed"
        status = response.status_code
        response.close()
        return None if 200 <= status < 300 else f"HTTP {status}"

    def close(self) -> None:
        self._session.close()
