"""The one error shape of the API: ``{"error": "<code>", "detail": "<for a person>", "param": ...}``.

Every refusal the API makes (a bad parameter, an unknown market, auth, limits, a dependency
that did not answer) is an :class:`ApiError`; the app's middleware turns it, and anything
unexpected, into a JSON response, so no route ever answers with HTML or a traceback.
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, *, param: str = "", headers: Any = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.param:
            out["param"] = self.param
        return out


def bad_param(param: str, detail: str) -> ApiError:
    """400 naming the parameter that was refused."""
    return ApiError(400, "bad_parameter", f"{param}: {detail}", param=param)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", what)


def unavailable(detail: str) -> ApiError:
    """A dependency (orderbook, supervisor, database) did not answer: the input was fine."""
    return ApiError(503, "unavailable", detail)


def timeout(detail: str) -> ApiError:
    return ApiError(504, "timeout", detail)
